"""Fixtures for the worklist SCP tests: a store, the DCMTK sample worklists, a running SCP."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from channels.dicom_mwl.config import MWLSCPConfig
from channels.dicom_mwl.scp import MWLSCP
from engine.dicom.items import item_from_dataset
from engine.store import worklist
from engine.store.sqlite import SQLiteStore
from tests.support.sources import running

OFFIS = Path("/usr/share/doc/dcmtk/examples/wlistdb/OFFIS")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed (Debian package dcmtk)")
    return path


@pytest.fixture(scope="session")
def offis_items(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The ten DCMTK sample worklist entries (dump2dcm'd, read by pydicom) as items."""
    dump2dcm = need("dump2dcm")
    dumps = sorted(OFFIS.glob("wklist*.dump"))
    if len(dumps) != 10:
        pytest.skip(f"DCMTK sample worklists not found in {OFFIS}")
    out = tmp_path_factory.mktemp("offis")
    items = []
    for dump in dumps:
        target = out / (dump.stem + ".wl")
        subprocess.run([dump2dcm, "-q", str(dump), str(target)], check=True, timeout=30)
        items.append(item_from_dataset(dcmread(target)))
    return items


async def load(store: SQLiteStore, items: list[dict[str, Any]]) -> None:
    def op(conn: Any) -> None:
        for item in items:
            worklist.upsert_step(conn, item)

    await store.write_tx(op)


def scp_config(**overrides: Any) -> MWLSCPConfig:
    return MWLSCPConfig.model_validate(
        {"type": "dicom_mwl_scp", "host": "127.0.0.1", "port": 0, **overrides}
    )


@asynccontextmanager
async def running_scp(store: Any, **overrides: Any) -> AsyncIterator[MWLSCP]:
    """An SCP on a free loopback port, stopped (and its threads joined) on exit."""
    async with running(MWLSCP("mwl", scp_config(**overrides), store=store)) as scp:
        yield scp


async def run_tool(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command-line peer (at most 30 s) without blocking the loop the SCP runs on."""
    return await asyncio.to_thread(
        subprocess.run, list(argv), capture_output=True, text=True, timeout=30, cwd=cwd
    )
