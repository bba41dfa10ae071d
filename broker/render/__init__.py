"""Reports rendered for people: highlighted source, Markdown, the read-only share page."""
