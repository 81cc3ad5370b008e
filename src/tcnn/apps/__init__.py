"""The apps: the command line, detect writers, batch jobs, video and the HTTP service."""
