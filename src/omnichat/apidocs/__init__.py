"""The API's own documentation: Swagger UI at ``/docs`` and Redoc at ``/redoc``, from assets that
ship in packages, under a Content-Security-Policy that lets nothing load from another origin."""
