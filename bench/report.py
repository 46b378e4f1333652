"""The printed table and the targets."""

from __future__ import annotations

import math
from typing import Any

from bench.compat import compat_sections, compat_targets
from bench.read import limit_side
from bench.scale import scale_sections, scale_targets

READ_RATIO_TARGET = 2.0
READ_CEILING_TARGET = 0.6  # the read: at least this share of the bare aiohttp handler's req/s
PUSH_CEILING_TARGET = 1.3  # push p99: at most this times the bare broadcast's p99
PUSH_GO_TARGET = 0.5  # push p99: at most this times etcd's fan-out p99 to Go watchers
PUSH_P99_TARGETS_MS = {1_000: 50.0, 10_000: 250.0}
PUBLISH_P50_TARGET_MS = 15.0
MEMORY_TARGET_KB = 30.0
INSTANCE_READ_RATIO_TARGET = 0.9  # named reads: at most 10% fewer req/s than anonymous ones
SUMMARY_WRITES_TARGET = 5.0  # etcd puts of instance summaries per second while churning


def _n(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int | float):
        return f"{value:,.{digits}f}"
    return str(value)


def _ms(result: dict[str, Any], *names: str) -> str:
    return " / ".join(_n(result.get(name), 1) for name in names)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _at_least(name: str, value: float | None, target: float) -> dict[str, Any]:
    """A ratio target: met when the measured ratio reaches it."""
    met = value >= target if value is not None else None
    return {"name": name, "value": value, "unit": "x", "met": met}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    found: list[dict[str, Any]] = []
    read = results.get("read") or []
    first = read[0] if read else None
    found.append(
        _at_least(
            f"read >= {READ_RATIO_TARGET:g}x etcd gateway"
            + (f" ({first['items']} items)" if first else ""),
            first["ratio"] if first else None,
            READ_RATIO_TARGET,
        )
    )
    found.append(
        _at_least(
            f"read >= {READ_CEILING_TARGET:g}x the bare aiohttp ceiling",
            first.get("ratio_ceiling") if first else None,
            READ_CEILING_TARGET,
        )
    )
    push = {r["subscribers"]: r for r in results.get("push") or [] if r["target"] == "sqlite"}
    for count in PUSH_P99_TARGETS_MS:
        value = push[count].get("ceiling_ratio_p99") if count in push else None
        found.append(
            {
                "name": f"push p99 <= {PUSH_CEILING_TARGET:g}x the bare broadcast's at {count:,}",
                "value": value,
                "unit": "x",
                "met": value <= PUSH_CEILING_TARGET if value is not None else None,
            }
        )
        go = push[count].get("ratio_p99_go") if count in push else None
        found.append(
            {
                "name": f"push p99 <= {PUSH_GO_TARGET:g}x etcd's to Go watchers at {count:,}",
                "value": go,
                "unit": "x",
                "met": go <= PUSH_GO_TARGET if go is not None else None,
            }
        )
    for count, limit in PUSH_P99_TARGETS_MS.items():
        row = push.get(count)
        ours = row["configcenter"] if row else None
        found.append(
            {
                "name": f"push p99 <= {limit:g} ms at {count:,} subscribers",
                "value": ours["p99_ms"] if ours else None,
                "unit": "ms",
                "met": (ours["p99_ms"] <= limit and ours["delivered"] == ours["expected"])
                if ours
                else None,
            }
        )
    publish = {r["target"]: r for r in results.get("publish") or []}
    mariadb = publish.get("mariadb")
    p50 = mariadb["configcenter"]["sequential"]["p50_ms"] if mariadb else None
    found.append(
        {
            "name": f"publish p50 <= {PUBLISH_P50_TARGET_MS:g} ms on MariaDB",
            "value": p50,
            "unit": "ms",
            "met": p50 <= PUBLISH_P50_TARGET_MS if p50 is not None else None,
        }
    )
    memory = results.get("memory") or {}
    kb = memory.get("kb_per_subscriber")
    at = memory.get("subscribers", 10_000)
    bare = memory.get("ceiling_kb_per_subscriber")
    found.append(
        {
            "name": f"<= {MEMORY_TARGET_KB:g} KB RSS per idle subscriber at {at:,}"
            + (f" (bare aiohttp ceiling {bare:g} KB)" if bare is not None else ""),
            "value": kb,
            "unit": "KB",
            "met": kb <= MEMORY_TARGET_KB if kb is not None else None,
            "ceiling": bare,
            "ratio_ceiling": memory.get("ratio_ceiling"),
        }
    )
    found += _rollout_targets(results)
    found += compat_targets(results)
    found += scale_targets(results)
    return found


def _rollout_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    gray = results.get("gray")
    found: list[dict[str, Any]] = [
        {
            "name": "gray p99 <= full push p99"
            + (
                f" at {gray['subscribers']:,} subscribers ({gray['percent']}% gray), "
                "none outside the rule got it"
                if gray
                else ""
            ),
            "value": gray["ratio_p99"] if gray else None,
            "unit": "x",
            "met": (
                gray["gray"]["p99_ms"] <= gray["full"]["p99_ms"]
                and gray["outside_got_gray"] == 0
                and gray["matched_missed"] == 0
            )
            if gray
            else None,
        }
    ]
    reads = results.get("instance_read") or [None]
    for row in reads:
        found.append(
            _at_least(
                f"named reads >= {INSTANCE_READ_RATIO_TARGET:g}x anonymous req/s"
                + (f" ({row['target']})" if row else ""),
                row["ratio"] if row else None,
                INSTANCE_READ_RATIO_TARGET,
            )
        )
    churn = results.get("instance_churn")
    found.append(
        {
            "name": f"instance summary writes <= {SUMMARY_WRITES_TARGET:g}/s to etcd"
            + (f" while {churn['subscribers']:,} subscribers churn" if churn else ""),
            "value": churn["puts_per_second"] if churn else None,
            "unit": "/s",
            "met": churn["puts_per_second"] <= SUMMARY_WRITES_TARGET if churn else None,
        }
    )
    return found


def render(results: dict[str, Any]) -> str:
    """The whole table as text."""
    m = results["machine"]
    out = [
        f"configcenter benchmark ({results['plan']['name']}) on {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB; {m['etcd']}; load average at start {m['load_average_at_start']}",
        f"took {results.get('duration_seconds', 0):.0f} s; ratio = configcenter / etcd",
    ]
    read = results.get("read") or []
    if read:
        out += ["", *_read_section(read)]
    push = results.get("push") or []
    if push:
        out += ["", *_push_section(push)]
    memory = results.get("memory")
    if memory:
        out += [
            "",
            f"MEMORY: {memory['kb_per_subscriber']} KB server RSS per idle WebSocket subscriber "
            f"at {memory['subscribers']:,} ({memory['rss_before_mb']} MB before, "
            f"{memory['rss_idle_mb']} MB idle, {memory['rss_after_pushes_mb']} MB after pushes)",
        ]
        if "ceiling_kb_per_subscriber" in memory:
            out.append(
                f"  bare aiohttp ceiling: {memory['ceiling_kb_per_subscriber']} KB per idle "
                f"subscriber ({memory['ceiling_rss_before_mb']} MB before, "
                f"{memory['ceiling_rss_idle_mb']} MB idle); configcenter "
                f"{_n(memory.get('ratio_ceiling'), 2)}x the ceiling"
            )
    publish = results.get("publish") or []
    if publish:
        out += [
            "",
            "PUBLISH: lone publishes (p50 / p99 ms), then "
            f"{publish[0]['apps']} apps published at once; etcd: a compare-and-put txn of the "
            "release's size; p50 / store: the lone p50 with the etcd lock beside the same "
            "store (MariaDB) without etcd, its floor",
            *_publish_table(publish),
        ]
    scaling = results.get("scaling") or []
    if scaling or read:
        out += ["", "SCALING: cost against items per env"]
        if read:
            out += _table(
                ["items", "bytes", "req/s", "etcd req/s", "server cpu/req"],
                [
                    [
                        _n(r["items"]),
                        _n(r["body_bytes"]),
                        _n(r["configcenter"]["rps"]),
                        _n(r["etcd"]["rps"]),
                        f"{_n(r['configcenter']['server_cpu_us_per_request'])} µs",
                    ]
                    for r in read
                ],
            )
        if scaling:
            out += ["", *_publish_table(scaling)]
    out += _rollout_sections(results)
    out += compat_sections(results, _table)
    out += scale_sections(results)
    for name, error in (results.get("errors") or {}).items():
        out += ["", f"{name.upper()} FAILED: {error}"]
    for note in results.get("unavailable", []):
        out += ["", f"n/a: {note}"]
    out += ["", "TARGETS"]
    for t in results.get("targets", []):
        state = {True: "met", False: "NOT MET", None: "not measured"}[t["met"]]
        value = f"{_n(t['value'], 2)} {t.get('unit', '')}".strip()
        out.append(f"  [{state}] {t['name']}: {value}")
    return "\n".join(out)


def _read_section(read: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in read:
        ours = r["configcenter"]
        rows.append(
            [
                _n(r["items"]),
                _n(r["body_bytes"]),
                _n(ours["rps"]),
                _n(r["if_none_match"]["rps"]),
                _n(r["etcd"]["rps"]),
                f"{_n(r['ratio'], 2)}x",
                f"{_n(r['ratio_if_none_match'], 2)}x",
                _n(r["ceiling"]["rps"]) if "ceiling" in r else "n/a",
                f"{_n(r.get('ratio_ceiling'), 2)}x",
                f"{_n(ours['server_cpu_us_per_request'])} µs",
                f"{ours['limit']} (server {ours['server_cpu_pct']}%, "
                f"wrk {ours['client_cpu_pct']}%)",
                f"{r['etcd']['limit']} (etcd {r['etcd']['server_cpu_pct']}%, "
                f"wrk {r['etcd']['client_cpu_pct']}%)",
            ]
        )
    header = ["items", "bytes", "req/s", "req/s 304", "etcd req/s", "ratio", "ratio 304"]
    header += ["ceiling req/s", "/ceiling", "cpu/req", "bound by (ours)", "bound by (etcd)"]
    out = [
        f"READ: authenticated GET …/config, {read[0]['connections']} connections "
        "(wrk, 1 thread); etcd: gateway range of a value of the same size; ceiling: bare "
        "aiohttp (uvloop) returning the same bytes; % = of one core",
        *_table(header, rows),
    ]
    shared = read[0].get("shared_port")
    if shared:
        out.append(
            f"  {read[0]['items']} items from {shared['replicas']} replicas sharing one port "
            f"(server.reuse_port, MariaDB + etcd): {_n(shared['rps'])} req/s = "
            f"{_n(shared['ratio'], 2)}x etcd, {_n(shared['ratio_ceiling'], 2)}x the one-process "
            f"ceiling; {shared['limit']} (servers {shared['server_cpu_pct']}%, wrk "
            f"{shared['client_cpu_pct']}%)"
        )
    return out


def _push_section(push: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in push:
        ours, theirs = r["configcenter"], r["etcd"]
        rows.append(
            [
                r["target"],
                _n(r["subscribers"]),
                _ms(ours, "p50_ms", "p99_ms", "max_ms"),
                f"{ours['delivered']}/{ours['expected']}",
                _ms(theirs, "p50_ms", "p99_ms", "max_ms"),
                f"{theirs['clients']}x{theirs['watchers_per_client']}",
                f"{_n(r['ratio_p99'], 2)}x",
                _ms(r["ceiling"], "p50_ms", "p99_ms") if "ceiling" in r else "",
                f"{_n(r['ceiling_ratio_p99'], 2)}x" if "ceiling" in r else "",
                _ms(r["etcd_go"], "p50_ms", "p99_ms") if "etcd_go" in r else "",
                f"{_n(r['ratio_p99_go'], 2)}x" if "etcd_go" in r else "",
                f"{ours['limit']} ({ours['server_cpu_us_per_delivery']} / "
                f"{ours['client_cpu_us_per_delivery']})",
                f"{theirs['limit']} ({theirs['server_cpu_us_per_delivery']} / "
                f"{theirs['client_cpu_us_per_delivery']})",
            ]
        )
    header = ["target", "subs", "ours p50/p99/max", "delivered", "etcd p50/p99/max"]
    header += ["etcd clients x watches", "p99 ratio", "ceiling p50/p99", "p99/ceiling"]
    header += ["etcd Go p50/p99", "p99/Go"]
    header += ["bound by (ours)", "bound by (etcd)"]
    return [
        "PUSH: publish-to-delivery ms, WebSocket subscribers vs aetcd watchers; ceiling: bare "
        "aiohttp (uvloop) writing one prebuilt frame to as many sockets, same client; etcd Go: "
        "the same watches with etcd's own Go client (clientv3); bound by: server or client "
        "(CPU µs per delivery, server / client)",
        *_table(header, rows),
    ]


def _rollout_sections(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    gray = results.get("gray")
    if gray:
        rows = []
        for name, key, receivers in (
            ("full push", "full", gray["subscribers"]),
            (f"gray {gray['percent']}%", "gray", gray["matched"]),
            ("abandon", "abandon", gray["subscribers"]),
        ):
            series = gray[key]
            rows.append(
                [
                    name,
                    _n(receivers),
                    _ms(series, "p50_ms", "p99_ms", "max_ms"),
                    f"{series['delivered']}/{series['expected']}",
                    _n(series["rounds"]),
                ]
            )
        out += [
            "",
            f"GRAY: publish-to-delivery ms on one fleet of {gray['subscribers']:,} named "
            "WebSocket subscribers, in cycles of a plain publish, a gray release "
            f"(rule {{percent: {gray['percent']}}}) and its abandon",
            *_table(["release", "receivers", "p50/p99/max", "delivered", "rounds"], rows),
            f"gray / full: p50 {_n(gray['ratio_p50'], 2)}x, p99 {_n(gray['ratio_p99'], 2)}x; "
            f"outside the rule: {gray['outside_got_gray']} of {gray['outside']:,} got a gray "
            f"version; inside: {gray['matched_missed']} gray deliveries missing",
        ]
    reads = results.get("instance_read") or []
    if reads:
        first_read = (results.get("read") or [{}])[0]
        etcd_rps = first_read.get("etcd", {}).get("rps")
        ceiling_rps = first_read.get("ceiling", {}).get("rps")
        rows = []
        for r in reads:
            anonymous, named = r["anonymous"], r["named"]
            rows.append(
                [
                    r["target"],
                    _n(anonymous["rps"]),
                    _n(named["rps"]),
                    f"{_n(r['ratio'], 2)}x",
                    f"{_n(named['rps'] / etcd_rps, 2)}x" if etcd_rps else "n/a",
                    f"{_n(named['rps'] / ceiling_rps, 2)}x" if ceiling_rps else "n/a",
                    _ms(anonymous, "p50_ms", "p99_ms"),
                    _ms(named, "p50_ms", "p99_ms"),
                    f"{_n(anonymous['server_cpu_us_per_request'])} / "
                    f"{_n(named['server_cpu_us_per_request'])} µs",
                    _n(r["listed"]),
                ]
            )
        header = ["target", "anon req/s", "named req/s", "ratio", "named /etcd", "/ceiling"]
        header += ["anon p50/p99"]
        header += ["named p50/p99", "cpu/req anon / named", "listed"]
        out += [
            "",
            f"INSTANCE READS: GET …/config, {reads[0]['connections']} connections (wrk, 1 "
            f"thread, one script), named: X-Config-Instance rotating over "
            f"{reads[0]['instance_ids']:,} ids with X-Config-Labels, anonymous: none; mean of "
            f"{reads[0]['runs_per_side']} alternating runs per side; /etcd and /ceiling: named "
            "req/s beside the READ section's etcd gateway and bare-aiohttp figures",
            *_table(header, rows),
        ]
    churn = results.get("instance_churn")
    if churn:
        out += [
            "",
            f"INSTANCE CHURN: {churn['subscribers']:,} named subscribers each reconnecting "
            f"about every {churn['hold_seconds']:g} s ({_n(churn['connects_per_second'])} "
            f"connects/s) for {churn['seconds']} s on {churn['target']}: "
            f"{churn['etcd_puts']} etcd puts of the instance summary "
            f"({_n(churn['puts_per_second'], 2)}/s, etcd watch; the server counted "
            f"{churn['server_summary_writes']}); server CPU {churn['server_cpu_pct']}%",
        ]
    return out


def _publish_table(rows_in: list[dict[str, Any]]) -> list[str]:
    # The same store without etcd is the locked publish's floor: "/ store" is how much the
    # lock and the distribution to etcd add.
    store_alone = {
        r["items"]: r["configcenter"]["sequential"]["p50_ms"]
        for r in rows_in
        if r["target"] == "mariadb"
    }
    rows = []
    for r in rows_in:
        ours, theirs = r["configcenter"], r.get("etcd", {})
        floor = store_alone.get(r["items"]) if r["target"] in ("etcd", "cluster") else None
        rows.append(
            [
                r["target"],
                _n(r["items"]),
                _ms(ours["sequential"], "p50_ms", "p99_ms"),
                _ms(ours["concurrent"], "p50_ms", "p99_ms"),
                _n(ours["per_second"], 1),
                _ms(theirs.get("sequential", {}), "p50_ms", "p99_ms"),
                _n(theirs.get("per_second"), 1),
                f"{_n(r.get('ratio_p50'), 2)}x",
                f"{_n(r.get('ratio_per_second'), 2)}x",
                f"{_n(ours['sequential']['p50_ms'] / floor, 2)}x" if floor else "",
                f"server {ours['server_cpu_pct']}%, client {ours['client_cpu_pct']}%",
                limit_side(ours["server_cpu_pct"], ours["client_cpu_pct"]),
            ]
        )
    header = ["target", "items", "p50 / p99", "at once p50 / p99", "pub/s", "etcd p50 / p99"]
    header += ["etcd txn/s", "p50 ratio", "pub/s ratio", "p50 / store", "cpu at once"]
    header += ["bound by (at once)"]
    return _table(header, rows)
