"""Sora Controller: one long prompt in, one long video out."""

from .celery import app as celery_app

__all__ = ["celery_app"]
