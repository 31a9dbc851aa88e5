"""The composition root: builds the edges (store, portal client, SIP phone, prompts) and, from
them, the one :class:`~ivr.campaign.campaign.Campaign` that ``night`` and ``run`` drive."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ivr.campaign.campaign import Campaign
from ivr.campaign.heartbeat import HeartbeatWriter, NodeProbe
from ivr.core.clock import Clock
from ivr.core.config import Config, config_warnings
from ivr.core.errors import ConfigError
from ivr.portal.client import PortalClient
from ivr.sip.api import SipSettings
from prompts.library import PromptLibrary
from storage.db import make_engine
from storage.store import Store

PACKAGED_PROMPTS = Path(__file__).resolve().parents[2] / "prompts"

log = logging.getLogger(__name__)


def make_store(config: Config) -> Store:
    return Store(make_engine(config.database))


def make_portal(config: Config, stop: threading.Event | None = None) -> PortalClient:
    """The portal client; ``stop`` (set on SIGTERM) ends an import in progress."""
    p = config.portal
    if p.insecure:  # only possible with portal.allow_insecure_http: true
        log.warning(
            "WARNING: the portal %s is plain http:// off this machine (portal.allow_insecure_http"
            "): the token and citizens' ratings cross the network unencrypted",
            p.base_url,
        )
    return PortalClient(
        p.base_url,
        p.token.get_secret_value(),
        timeout_s=p.timeout_s,
        page_size=p.page_size,
        retry_budget_s=p.retry_budget_s,
        request_deadline_s=p.request_deadline_s,
        max_page_bytes=p.max_page_bytes,
        max_pages=p.max_pages,
        stop=stop,
    )


def sip_settings(config: Config) -> SipSettings:
    s = config.sip
    low, high = s.rtp_range
    return SipSettings(
        server=s.server,
        port=s.port,
        username=s.username,
        password=s.password.get_secret_value(),
        local_ip=s.local_ip,
        sip_port=s.sip_port,
        rtp_port_low=low,
        rtp_port_high=high,
        register=s.registration,
        caller_id=s.caller_id,
        register_expires_s=s.register_expires_s,
        register_give_up_s=s.register_give_up_s,
    )


def make_prompts(config: Config) -> PromptLibrary:
    root = config.prompts.dir or PACKAGED_PROMPTS
    return PromptLibrary(root, config.prompts.cache_dir, config.prompts.languages)


@contextmanager
def runner_edges(config: Config, store: Store, phone: object, clock: Clock) -> Iterator[NodeProbe]:
    """What every runner (``night``, ``run``) shows of itself while it runs: its heartbeat in
    the database and, at ``metrics.listen``, /metrics, /healthz and /readyz. The runner fills
    the probe in (its dialer) as it comes up."""
    from ivr.campaign.dialer import node_name

    probe = NodeProbe(node_name(config), clock, phone, config.sip.registration)
    server = None
    if config.metrics.listen:
        from ivr.campaign import gauges, metrics

        server = metrics.MetricsServer(
            config.metrics.listen, lambda: metrics.readiness_problems(store.engine, probe)
        )
        gauges.register_runner(probe, store, clock, config.tz)
        server.start()
    try:
        with HeartbeatWriter(store.engine, probe):
            yield probe
    finally:
        if server is not None:
            server.stop()
            gauges.unregister_runner()


@contextmanager
def campaign_node(config: Config, store: Store, clock: Clock) -> Iterator[Campaign]:
    """A node (``night`` or ``run``) for the length of the ``with``: its campaign over the SIP
    phone (not yet started), the portal, the runner lock, its presence, heartbeat and metrics.
    The campaign's ``stop`` (set on SIGTERM) is the portal client's too: it ends an import."""
    from ivr.campaign.dialer import node_name
    from ivr.campaign.metrics import CountingPortal
    from ivr.sip.pyvoip_adapter import PyVoipPhone
    from storage.locks import node_presence, runner_lock

    prompts = make_prompts(config)
    problems = prompts.check()
    if problems:
        raise ConfigError("prompts", "; ".join(problems))
    for warning in config_warnings(config):
        log.warning("configuration: %s", warning)
    phone = PyVoipPhone(sip_settings(config))
    stop = threading.Event()
    with (
        runner_lock(store.engine),
        node_presence(store.engine, node_name(config)),
        make_portal(config, stop) as portal,
        runner_edges(config, store, phone, clock) as probe,
    ):
        counted = CountingPortal(portal)  # failed portal operations counted by kind
        yield Campaign(config, store, counted, counted, phone, prompts, clock, probe, stop)
