"""Presentation: words (assumptions), tables and records (JSON) for results. Pure text; nothing prints."""
