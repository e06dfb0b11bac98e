"""The support console: staff-only pages to find any order or checkout and replay failures."""
