// The env's rollout as the page sees it: which version each instance runs and the active gray
// release, read every 2 s while the env is on screen (instances are not on the watch channel:
// the page's own socket is anonymous), and the bar that shows how many run each version.

import { ApiError, api } from "../../api.js";
import { h, plural, replace } from "../../dom.js";
import { sessionEnded } from "../../session.js";

const POLL_MS = 2000;

/** The version an instance runs: what it acked, else what it was last sent (null: neither). */
export function runningVersion(instance) {
  return instance.applied_version ?? instance.delivered_version ?? null;
}

/** A gray rule in words: "track=canary · 2 instances · 10 %". */
export function ruleText(rule) {
  const parts = [];
  const labels = Object.entries(rule?.labels || {});
  if (labels.length) parts.push(labels.map(([k, v]) => `${k}=${v}`).join(", "));
  const ids = rule?.instances || [];
  if (ids.length) parts.push(ids.length <= 3 ? ids.join(", ") : plural(ids.length, "instance"));
  if (rule?.percent !== undefined && rule?.percent !== null) parts.push(`${rule.percent} %`);
  return parts.join(" · ") || "no instances";
}

/** What identifies a gray release's state: a change means someone started, widened or ended one. */
function grayKey(gray) {
  return gray ? `${gray.version}/${gray.status}/${JSON.stringify(gray.rule)}` : "";
}

/**
 * Why an instance lags, or null: it did not ack what it was sent, or it runs another version
 * than the one it should (the gray release when the rule takes it, else the main release).
 */
export function lagReason(state, instance) {
  const running = runningVersion(instance);
  const sent = instance.delivered_version;
  if (instance.transport === "websocket" && sent !== null && sent !== undefined) {
    const acked = instance.applied_version;
    if (acked === null || acked === undefined) return `sent v${sent}, not acked`;
    if (sent > acked) return `sent v${sent}, acked v${acked}`;
  }
  const expected = state.expected(instance);
  if (expected !== null && running !== expected) {
    return running === null
      ? `should run v${expected}`
      : `runs v${running}, should run v${expected}`;
  }
  return null;
}

/**
 * Reads the env's instances and gray release now and every 2 s until stop(). state: instances,
 * summary, gray (the env's, null or active), latest, matched (the ids its rule takes now), and
 * expected(instance). onChange(listener) runs listener(state, { grayChanged }) after each read.
 */
export function rolloutWatch(ctx) {
  const listeners = new Set();
  const state = {
    loaded: false,
    instances: [],
    summary: { total: 0, by_version: {} },
    gray: ctx.settings.gray?.status === "active" ? ctx.settings.gray : null,
    latest: ctx.settings.latest_version ?? null,
    matched: new Set(),
    expected(instance) {
      if (this.gray) {
        return this.matched.has(instance.instance) ? this.gray.version : this.gray.main_version;
      }
      return this.latest;
    },
  };
  let timer = null;
  let stopped = false;
  let running = null;

  async function read() {
    const [list, env] = await Promise.all([
      api("GET", `${ctx.base}/instances`),
      api("GET", ctx.base),
    ]);
    const gray = env.gray?.status === "active" ? env.gray : null;
    const matched = gray
      ? new Set((await api("POST", `${ctx.base}/gray/preview`, { rule: gray.rule })).instances)
      : new Set();
    const grayChanged = grayKey(gray) !== grayKey(state.gray);
    Object.assign(state, {
      loaded: true,
      instances: list.instances,
      summary: list.summary,
      gray,
      latest: env.latest_version,
      matched,
    });
    ctx.settings = { ...ctx.settings, gray: env.gray, latest_version: env.latest_version };
    for (const listener of listeners) listener(state, { grayChanged });
  }

  /** Read now (one read at a time: a call during one waits for it, then reads again). */
  async function refresh() {
    if (running) await running.catch(() => null);
    running = read();
    try {
      await running;
    } finally {
      running = null;
    }
  }

  const tick = async () => {
    timer = null;
    try {
      if (!document.hidden && !sessionEnded()) await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) stopped = true;
      else if (!(error instanceof ApiError)) throw error;
    } finally {
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    }
  };

  return {
    state,
    refresh,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    start() {
      if (!stopped && timer === null) tick();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
      listeners.clear();
    },
  };
}

/** Versions newest first, with their counts; the gray version and the main one named. */
function segments(state) {
  const counts = Object.entries(state.summary.by_version || {})
    .map(([version, count]) => ({ version: Number(version), count }))
    .filter((s) => s.count > 0)
    .sort((a, b) => b.version - a.version);
  const main = state.gray ? state.gray.main_version : state.latest;
  return counts.map((s) => ({
    ...s,
    kind:
      state.gray && s.version === state.gray.version ? "gray" : s.version === main ? "main" : "old",
  }));
}

const KIND_WORD = { gray: " (gray)", main: "", old: "" };

/**
 * The rollout bar: one segment per version, as wide as the share of instances running it,
 * the gray version marked; a legend with the counts, and how many lag.
 */
export function rolloutBar(watch) {
  const el = h("div", { class: "rollout", hidden: true });
  let shown = "";

  function render(state) {
    const parts = segments(state);
    const total = state.summary.total || 0;
    const lagging = state.instances.filter((i) => lagReason(state, i) !== null).length;
    const key = JSON.stringify([parts, total, lagging, state.gray?.version ?? null]);
    if (key === shown) return;
    shown = key;
    el.hidden = total === 0 && !state.gray;
    const counted = parts.reduce((sum, s) => sum + s.count, 0);
    const words = parts.map((s) => `v${s.version}${KIND_WORD[s.kind]}: ${s.count}`);
    const bar = h(
      "div",
      {
        class: "rollout-bar",
        role: "img",
        "aria-label": total
          ? `Of ${plural(total, "instance")}: ${words.join(", ")}`
          : "No instances connected",
      },
      parts.map((s) => {
        const seg = h(
          "span",
          {
            class: `rollout-seg rollout-seg-${s.kind}`,
            dataset: { version: s.version, count: s.count },
            title: `v${s.version}${KIND_WORD[s.kind]}: ${plural(s.count, "instance")}`,
          },
          h("span", { class: "rollout-seg-text", text: `v${s.version}` }),
        );
        seg.style.flexGrow = String(s.count);
        return seg;
      }),
      counted < total
        ? (() => {
            const rest = h("span", {
              class: "rollout-seg rollout-seg-none",
              title: `${total - counted} sent nothing yet`,
            });
            rest.style.flexGrow = String(total - counted);
            return rest;
          })()
        : null,
    );
    replace(
      el,
      h(
        "div",
        { class: "rollout-head" },
        h("span", { class: "rollout-title", text: "Rollout" }),
        h("span", { class: "rollout-total", text: plural(total, "instance") }),
        lagging
          ? h("span", { class: "rollout-lagging", text: `${lagging} lagging` })
          : total
            ? h("span", { class: "rollout-ok", text: "all current" })
            : null,
      ),
      bar,
      h(
        "ul",
        { class: "rollout-legend" },
        parts.map((s) =>
          h(
            "li",
            { class: "rollout-legend-item", dataset: { version: s.version, count: s.count } },
            h("span", { class: `rollout-swatch rollout-seg-${s.kind}`, "aria-hidden": "true" }),
            `v${s.version}${KIND_WORD[s.kind]} · ${s.count}`,
          ),
        ),
      ),
    );
  }

  const stop = watch.onChange((state) => render(state));
  render(watch.state);
  return { el, stop };
}
