// #/apps/APP/ENV/instances: every live instance of the env with the version it runs, its
// transport, replica and labels; laggards (not acked, or not on the version they should run)
// highlighted. Follows the rollout's reads, so it is current without a reload.

import { h, plural, replace, timeEl, uid } from "../../dom.js";
import { badge, emptyState, table } from "../../ui.js";
import { lagReason, runningVersion } from "./rollout.js";

// Enough rows to read; the filters narrow a larger fleet.
const SHOWN = 500;

function select(label, anyText) {
  const el = h("select", { id: uid("filter") });
  const wrap = h(
    "div",
    { class: "field field-inline" },
    h("label", { for: el.id, text: label }),
    el,
  );
  let offered = "";
  return {
    wrap,
    el,
    /** Offer these [value, text] options (kept when unchanged; a chosen one stays chosen). */
    offer(options) {
      const key = JSON.stringify(options);
      if (key === offered) return;
      offered = key;
      const keep = el.value;
      replace(
        el,
        h("option", { value: "", text: anyText }),
        options.map(([value, text]) => h("option", { value, text })),
      );
      el.value = options.some(([value]) => value === keep) ? keep : "";
    },
  };
}

const sorted = (values) => [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** #/apps/APP/ENV/instances */
export async function instancesSection(root, ctx) {
  const { app, env } = ctx;
  const watch = ctx.rollout;
  const label = select("Label", "Any label");
  const version = select("Version", "Any version");
  const replica = select("Replica", "Any replica");
  const laggingId = uid("lagging");
  const laggingOnly = h("input", { id: laggingId, type: "checkbox" });
  const count = h("span", { class: "count" });
  const listBox = h("div", {});
  const filters = h(
    "form",
    { class: "instance-filters", novalidate: true, "aria-label": "Filter instances" },
    label.wrap,
    version.wrap,
    replica.wrap,
    h(
      "div",
      { class: "check check-inline" },
      laggingOnly,
      h("label", { for: laggingId, text: "Lagging only" }),
    ),
  );
  filters.addEventListener("submit", (event) => event.preventDefault());
  let shown = "";

  const columns = (state) => [
    {
      label: "Instance",
      cls: "col-instance",
      cell: (i) => [
        h("code", { class: "instance-id", text: i.instance }),
        i.gray ? badge("gray", "warn", { title: "Runs the gray release" }) : null,
      ],
    },
    {
      label: "Version",
      cls: "col-version",
      cell: (i) => {
        const lag = lagReason(state, i);
        const running = runningVersion(i);
        return [
          h("span", { class: "version", text: running === null ? "—" : `v${running}` }),
          lag ? badge(lag, "danger", { class: "badge badge-danger lag-badge" }) : null,
        ];
      },
    },
    { label: "Transport", cell: (i) => h("span", { text: i.transport }) },
    { label: "Replica", cell: (i) => h("code", { class: "replica-id", text: i.replica }) },
    {
      label: "Labels",
      cell: (i) => {
        const pairs = Object.entries(i.labels || {});
        return pairs.length
          ? h(
              "span",
              { class: "chips" },
              pairs.map(([k, v]) => h("span", { class: "chip chip-static", text: `${k}=${v}` })),
            )
          : h("span", { class: "muted", text: "none" });
      },
    },
    { label: "Address", cell: (i) => h("span", { class: "mono", text: i.address || "—" }) },
    { label: "Last seen", cell: (i) => timeEl(i.last_seen) },
  ];

  function render(state) {
    const pairs = sorted(
      state.instances.flatMap((i) => Object.entries(i.labels || {}).map(([k, v]) => `${k}=${v}`)),
    );
    label.offer(pairs.map((p) => [p, p]));
    const versions = Object.keys(state.summary.by_version || {})
      .map(Number)
      .sort((a, b) => b - a);
    version.offer(
      versions.map((v) => [String(v), `v${v}${state.gray?.version === v ? " (gray)" : ""}`]),
    );
    replica.offer(sorted(state.instances.map((i) => i.replica)).map((r) => [r, r]));

    const [key, ...rest] = label.el.value.split("=");
    const value = rest.join("=");
    const rows = state.instances.filter(
      (i) =>
        (!label.el.value || i.labels?.[key] === value) &&
        (!version.el.value || String(runningVersion(i)) === version.el.value) &&
        (!replica.el.value || i.replica === replica.el.value) &&
        (!laggingOnly.checked || lagReason(state, i) !== null),
    );
    const signature = JSON.stringify([
      rows,
      state.gray,
      [...state.matched],
      state.latest,
      state.instances.length,
    ]);
    if (signature === shown) return;
    shown = signature;
    count.textContent =
      rows.length === state.instances.length
        ? String(state.instances.length)
        : `${rows.length} of ${state.instances.length}`;
    if (!state.instances.length) {
      replace(
        listBox,
        emptyState(
          state.loaded ? "No instances" : "Reading the instances…",
          state.loaded
            ? `Instances appear here while they subscribe to ${app}/${env} or read it naming themselves (X-Config-Instance).`
            : null,
        ),
      );
      return;
    }
    if (!rows.length) {
      replace(listBox, emptyState("No instance matches these filters", null));
      return;
    }
    replace(
      listBox,
      table(columns(state), rows.slice(0, SHOWN), {
        caption: `Instances of ${app}/${env}`,
        rowAttrs: (i) => ({
          class: lagReason(state, i) ? "row-lagging" : null,
          dataset: { instance: i.instance },
        }),
      }),
      rows.length > SHOWN
        ? h("p", {
            class: "muted",
            text: `Showing ${SHOWN} of ${plural(rows.length, "instance")}: narrow the filters to see the others.`,
          })
        : null,
    );
  }

  for (const control of [label.el, version.el, replica.el, laggingOnly]) {
    control.addEventListener("change", () => render(watch.state));
  }
  const stop = watch.onChange((state) => render(state));
  const previous = ctx.stop;
  ctx.stop = () => {
    stop();
    previous();
  };
  ctx.refresh = async () => watch.refresh();
  render(watch.state);
  replace(
    root,
    h(
      "section",
      { class: "card" },
      h(
        "div",
        { class: "card-head" },
        h("h2", { class: "card-title" }, "Instances ", count),
        h("div", { class: "card-actions" }, filters),
      ),
      listBox,
    ),
  );
}
