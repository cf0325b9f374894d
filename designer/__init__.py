"""Stepwell web app: Django project package (settings, URLs, ASGI) and the designer app."""
