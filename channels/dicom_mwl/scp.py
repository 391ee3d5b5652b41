"""The ``dicom_mwl_scp`` source: a DICOM AE serving C-ECHO and Modality Worklist C-FIND.

pynetdicom serves associations in threads; this source owns that server inside the engine's
asyncio world. :meth:`MWLSCP.run` binds (in a worker thread), calls ``ready()``, serves until
cancelled and, in ``finally``, stops accepting, aborts open associations and joins their
threads. Queries are answered from ``self.store`` (set by the runtime, or passed to the
constructor) through a :class:`~engine.dicom.bridge.LoopBridge`; ``dispatch`` is not used by
a pure query service.

The AE hosts a list of services (:mod:`engine.dicom.service`): Verification, the worklist
and, unless ``mpps: {enabled: false}``, Modality Performed Procedure Step
(:mod:`channels.dicom_mpps`) on the same AE title and port. More services are added by
passing ``services=[factory, ...]`` or by overriding :meth:`MWLSCP.service_factories`.
MPPS sends its HL7 status messages to the channel's destinations that have a ``mapping:``;
the runtime hands them over with :meth:`MWLSCP.attach_routes` (start-up and reload).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from channels.dicom_mpps.config import MPPSConfig
from channels.dicom_mpps.service import MPPSService
from channels.dicom_mwl.config import MWLSCPConfig
from channels.dicom_mwl.service import ModalityWorklistService
from engine.channel import Dispatch, Source
from engine.dicom.bridge import LoopBridge
from engine.dicom.server import DICOMServer, ServerSettings
from engine.dicom.service import DICOMService, EchoService, ServiceContext, ServiceFactory
from engine.errors import BindError, ChannelError
from engine.logging import get_logger
from engine.registry import register_source

log = get_logger("radbridge.dicom_mwl")


class DICOMSCPConfig(MWLSCPConfig):
    """The worklist SCP with its MPPS service (same AE title, same port)."""

    mpps: MPPSConfig = MPPSConfig()
    """Modality Performed Procedure Step (N-CREATE / N-SET); on by default."""


@register_source
class MWLSCP(Source):
    type_name = "dicom_mwl_scp"
    config_model = DICOMSCPConfig
    config: MWLSCPConfig

    def __init__(self, name: str, config: MWLSCPConfig, metrics: Any = None, *,
                 store: Any = None, services: Sequence[ServiceFactory] = ()) -> None:
        super().__init__(name, config, metrics)
        if store is not None:
            self.store = store
        self.extra_services = list(services)
        self.server: DICOMServer | None = None
        self.routes: list[Any] = []

    def attach_routes(self, routes: Sequence[Any]) -> None:
        """The channel's destinations (``engine.router.Route``): MPPS status goes to those
        with a mapping. Swapped whole, so a reload never shows a half-built list."""
        self.routes = list(routes)

    def service_factories(self) -> list[ServiceFactory]:
        def worklist(ctx: ServiceContext) -> DICOMService:
            return ModalityWorklistService(ctx.channel, self.config, ctx.store, ctx.bridge,
                                           ctx.metrics)

        factories: list[ServiceFactory] = [lambda _ctx: EchoService(), worklist]
        mpps_config = getattr(self.config, "mpps", None) or MPPSConfig()
        if mpps_config.enabled:
            def mpps(ctx: ServiceContext) -> DICOMService:
                return MPPSService(ctx.channel, mpps_config, ctx.store, ctx.bridge,
                                   lambda: self.routes, ctx.metrics)

            factories.append(mpps)
        return [*factories, *self.extra_services]

    def settings(self) -> ServerSettings:
        cfg = self.config
        return ServerSettings(
            ae_title=cfg.ae_title, host=cfg.host, port=cfg.port,
            max_associations=cfg.max_associations, require_called_ae=cfg.require_called_ae,
            allowed_calling_aes=tuple(cfg.allowed_calling_aes),
            acse_timeout_s=cfg.acse_timeout_s, dimse_timeout_s=cfg.dimse_timeout_s,
            network_timeout_s=cfg.network_timeout_s,
        )

    async def run(self, dispatch: Dispatch, ready: Callable[[], None]) -> None:
        if self.store is None:
            raise ChannelError(f"{self.name}: the worklist SCP needs the engine store")
        bridge = LoopBridge.for_running_loop(timeout=self.config.query_timeout_s)
        ctx = ServiceContext(self.name, bridge, self.store, dispatch, self.metrics)
        server = DICOMServer(self.settings(), [f(ctx) for f in self.service_factories()])
        cfg = self.config
        try:
            self.bound_port = await asyncio.to_thread(server.start)
        except OSError as exc:
            raise BindError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from exc
        self.server = server
        try:  # from here on the port is ours: whatever fails, the finally releases it
            log.info("listener_started", channel=self.name, host=cfg.host,
                     port=self.bound_port, type=self.type_name)
            ready()
            await asyncio.Future()  # serve until cancelled
        finally:
            await asyncio.to_thread(server.stop)
            self.server = None
            log.info("listener_stopped", channel=self.name, port=self.bound_port)
