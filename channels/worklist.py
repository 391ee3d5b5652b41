"""The ``worklist`` destination: orders and patient updates applied to the worklist.

An internal destination: its effect runs inside the ingest transaction, so the order, its
scheduled procedure steps and the ACK agree. Orders go through ``order_mapping`` (default
``mappings/order_to_worklist.yaml``), ADT through ``patient_mapping`` (default
``mappings/adt_to_patient.yaml``); a mapping rejection (missing accession, value too long
for DICOM, …) is answered AE with the reason and the ERR location.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Literal

from engine.channel import InternalDestination, Prepared
from engine.config.models import DestinationCommon
from engine.errors import MessageRejected
from engine.registry import register_destination


class WorklistConfig(DestinationCommon):
    """Orders → scheduled procedure steps served by the DICOM worklist SCP."""

    type: Literal["worklist"]
    order_mapping: str = "mappings/order_to_worklist.yaml"
    order_params: dict[str, Any] = {}
    """Values for the order mapping's params (length_policy, missing_study_uid, …)."""
    patient_mapping: str = "mappings/adt_to_patient.yaml"
    merged_patient: Literal["reject", "follow"] = "reject"
    """An order using a patient ID merged away by A40: answer AE, or move it to the survivor."""
    unknown_patient: Literal["ignore", "reject"] = "ignore"
    """A patient update for a patient with no worklist entry: accept and ignore, or AE."""


@register_destination
class WorklistDestination(InternalDestination):
    type_name = "worklist"
    config_model = WorklistConfig
    config: WorklistConfig

    def __init__(self, name: str, config: WorklistConfig) -> None:
        super().__init__(name, config)
        self._orders: Any = None
        self._patients: Any = None

    def _mappings(self) -> tuple[Any, Any]:
        if self._orders is None:
            from transforms import load_mapping

            cfg = self.config
            self._orders = load_mapping(self.base_dir / cfg.order_mapping,
                                        params=cfg.order_params or None)
            self._patients = load_mapping(self.base_dir / cfg.patient_mapping)
        return self._orders, self._patients

    def prepare(self, msg: Any, payload: Any) -> Prepared:
        from transforms.worklist import apply_order, apply_patient

        orders, patients = self._mappings()
        is_adt = msg.message_code == "ADT"
        result = (patients if is_adt else orders).run(msg)
        if result.status == "rejected":
            raise result.to_rejection()
        if result.status == "filtered":
            return Prepared(None, None, [f"not applied: {result.reason}"])
        record = result.record
        cfg = self.config

        def effect(conn: sqlite3.Connection, message_id: int) -> None:
            try:
                if is_adt:
                    apply_patient(conn, record, message_id, unknown_patient=cfg.unknown_patient)
                else:
                    apply_order(conn, record, message_id, merged_patient=cfg.merged_patient)
            except ValueError as exc:  # WorklistItemError: the item cannot be stored
                raise MessageRejected(f"worklist: {exc}", code="AE", error_code="207") from exc

        return Prepared(effect, record, list(result.warnings))
