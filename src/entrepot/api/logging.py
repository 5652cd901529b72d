"""structlog set-up: JSON lines in production, readable lines in development;
every line carries the request id bound by the request middleware."""

from __future__ import annotations

import logging

import structlog

from entrepot.db.settings import get_settings


def configure_logging() -> None:
    settings = get_settings()
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_json or settings.env == "production"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelName(settings.log_level.upper())
        ),
        cache_logger_on_first_use=True,
    )
