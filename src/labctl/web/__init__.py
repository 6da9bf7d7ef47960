"""labctl.web: `labctl serve`, the browser face of the store (DESIGN.md §14).

FastAPI with Jinja2 templates and HTMX, plots by uPlot; both JavaScript libraries are pinned files shipped in
`static/vendor` with their licences (never a CDN). Pages read through `labctl.api`, as the CLI does.
`create_app(db)` builds the app (`labctl.web.app`).
"""
