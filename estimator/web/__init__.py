"""The calculator as a local web page (``estimate serve``): a Starlette app over the JSON API, its page and
assets served from the package, nothing fetched from anywhere. Needs the ``web`` extra."""
