"""Switch off pynetdicom's logging of identifiers (PHI) and its per-message log handlers.

pynetdicom logs every C-FIND request and response identifier (patient names, IDs, birth
dates) when ``LOG_REQUEST_IDENTIFIERS`` / ``LOG_RESPONSE_IDENTIFIERS`` are True, its default,
and with ``LOG_HANDLER_LEVEL = "standard"`` binds handlers that describe every PDU and DIMSE
message. These settings are process-wide (pynetdicom keeps them in its ``_config`` module),
so they are turned off for every AE in the engine, SCP and SCU alike; the ``pynetdicom``
logger is raised to WARNING. Call :func:`silence_identifier_logging` before building an AE
(the standard handlers are bound when a server or association is created). Idempotent.
"""

from __future__ import annotations

import logging

from pynetdicom import _config


def silence_identifier_logging() -> None:
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    _config.LOG_HANDLER_LEVEL = "none"
    logger = logging.getLogger("pynetdicom")
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)


def identifier_logging_silenced() -> bool:
    return not (_config.LOG_REQUEST_IDENTIFIERS or _config.LOG_RESPONSE_IDENTIFIERS
                or _config.LOG_HANDLER_LEVEL == "standard")
