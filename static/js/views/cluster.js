// The cluster as this replica sees it: replicas, etcd members, publish locks.

import { api, me } from "../api.js";
import { exactTime, h, relativeTime, replace } from "../dom.js";
import {
  badge,
  busy,
  button,
  card,
  emptyState,
  needsAdmin,
  pageHead,
  showError,
  table,
} from "../ui.js";

function label(key) {
  const text = key.replace(/_/g, " ");
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function cellValue(key, value) {
  if (value === null || value === undefined || value === "")
    return h("span", { class: "muted", text: "—" });
  if (typeof value === "boolean")
    return value ? badge("yes", "ok") : h("span", { class: "muted", text: "no" });
  if (
    /_at$|^since$|^started|^last_refresh$/.test(key) &&
    (typeof value === "number" || typeof value === "string")
  ) {
    const when = typeof value === "number" ? new Date(value * 1000) : new Date(value);
    if (!Number.isNaN(when.getTime())) {
      return h("time", {
        class: "cluster-time",
        datetime: when.toISOString(),
        title: relativeTime(value),
        text: exactTime(value),
      });
    }
  }
  if (/^id$|_id$|^replica$|^name$|^address$|endpoint|url/.test(key) && typeof value === "string")
    return h("code", { class: "cluster-id", text: value });
  if (Array.isArray(value)) return h("span", { text: value.join(", ") });
  if (typeof value === "object") return h("code", { text: JSON.stringify(value) });
  return h("span", { text: String(value) });
}

/** A table of objects whose fields are not fixed (they depend on the coordinator). */
function objectTable(rows, caption, extra = []) {
  const keys = [];
  for (const row of rows)
    for (const key of Object.keys(row)) if (!keys.includes(key)) keys.push(key);
  return table(
    keys
      .map((key) => ({ label: label(key), cell: (row) => cellValue(key, row[key]) }))
      .concat(extra),
    rows,
    { caption },
  );
}

function stat(label, value) {
  return h(
    "div",
    { class: "stat" },
    h("span", { class: "stat-label", text: label }),
    h("span", { class: "stat-value", text: value }),
  );
}

const KNOWN = new Set(["mode", "replicas", "etcd_members", "lock_holders", "subscribers"]);

/** The replica that answered this page: its id in cluster mode, the one marked self otherwise. */
function thisReplica(info) {
  const replicas = info.replicas || [];
  const mine = replicas.find((r) => r.self || (info.replica && r.id === info.replica));
  return info.replica || mine?.id || mine?.address || null;
}

/** The page's body for one answer of GET /cluster. */
function clusterDetails(info) {
  const standalone = info.mode === "standalone";
  const replicas = info.replicas || [];
  const subscribers = (r) => {
    if (typeof r.subscribers === "number") return String(r.subscribers);
    if (r.self) return String(info.subscribers ?? 0);
    return "—";
  };
  const members = info.etcd_members || [];
  const holders = info.lock_holders || [];
  const other = Object.entries(info).filter(([k]) => !KNOWN.has(k));
  const here = thisReplica(info);
  return [
    here
      ? h(
          "p",
          { class: "replica-here" },
          "You are on replica ",
          h("code", { class: "cluster-id", text: here }),
          ".",
        )
      : null,
    standalone
      ? h(
          "div",
          { class: "banner banner-info" },
          h(
            "div",
            { class: "banner-text" },
            h("strong", { text: "Standalone mode." }),
            " This server runs alone, without etcd: publishes are delivered by this process only. Set [etcd] endpoints (or CONFIGCENTER_ETCD_ENDPOINTS) on every replica to run a cluster.",
          ),
        )
      : null,
    h(
      "div",
      { class: "stats" },
      stat("Mode", standalone ? "Standalone" : "Cluster"),
      stat("Replicas", String(replicas.length)),
      stat("etcd members", standalone ? "—" : String(members.length)),
      stat("Subscribers here", String(info.subscribers ?? 0)),
    ),
    card(
      `Replicas (${replicas.length})`,
      [],
      replicas.length
        ? objectTable(
            replicas.map(({ subscribers: _s, ...rest }) => rest),
            "Replicas",
            [
              {
                label: "Subscribers",
                cell: (r) =>
                  h("span", { text: subscribers(replicas.find((x) => x.id === r.id) || r) }),
              },
            ],
          )
        : emptyState(
            "No replicas registered",
            "Replicas register themselves in etcd when they start.",
          ),
    ),
    card(
      "etcd members",
      [],
      standalone
        ? emptyState(
            "No etcd in standalone mode",
            "Point every replica at the same etcd cluster to share locks and deliver publishes everywhere.",
          )
        : members.length
          ? objectTable(members, "etcd members")
          : emptyState(
              "No etcd member answers",
              "Check that etcd is running and reachable from this replica.",
            ),
    ),
    card(
      "Publish locks held now",
      [],
      holders.length
        ? objectTable(holders, "Publish locks")
        : emptyState(
            "No publish in progress",
            "A lock is held for an env only while it is being published.",
          ),
    ),
    other.length
      ? card("Other details", [], objectTable([Object.fromEntries(other)], "Other details"))
      : null,
  ];
}

/** #/cluster */
export async function clusterView(main) {
  if (!me.admin) return needsAdmin(main, "Cluster");
  const box = h("div", {});
  const load = async () => replace(box, clusterDetails(await api("GET", "/cluster")));
  const refresh = button("Refresh", async (event) => {
    try {
      await busy(event.currentTarget, load);
    } catch (error) {
      showError(error, "Could not load the cluster");
    }
  });
  await load();
  replace(
    main,
    pageHead({
      title: "Cluster",
      subtitle: "Replicas, etcd members and subscribers, as this replica sees them.",
      actions: [refresh],
    }),
    box,
  );
}
