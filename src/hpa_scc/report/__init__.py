"""Floor 4: pictures, charts and HTML pages for people."""
