"""The browser UI: static HTML, CSS and ES modules served by the app, a client of the public API."""
