"""``tcnn serve``: landmarks over HTTP and a page to try them (needs ``tcnn[serve]``).

Example:
    >>> from tcnn.apps.serve import ServeConfig, create_app
    >>> app = create_app(ServeConfig(max_upload_mb=5))  # any ASGI server runs it
"""

from tcnn.apps.serve.app import COORDINATES, ServeConfig, create_app, serve

__all__ = ["COORDINATES", "ServeConfig", "create_app", "serve"]
