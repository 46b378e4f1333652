// One env: the page around its sections (views/env/: draft, history, release, compare,
// instances, requests, settings), the rollout (which version the instances run, the active
// gray release), and the live channel that keeps the page current when someone publishes
// elsewhere.

import { ApiError, api, envPath, me, seg } from "../api.js";
import { h, replace } from "../dom.js";
import { envHref } from "../links.js";
import { live } from "../live.js";
import { badge, flash, pageHead } from "../ui.js";
import { compareSection } from "./env/compare.js";
import { draftSection } from "./env/draft.js";
import { grayPanel } from "./env/gray.js";
import { historySection } from "./env/history.js";
import { instancesSection } from "./env/instances.js";
import { isOwnRelease } from "./env/publish.js";
import { releaseSection } from "./env/release.js";
import { PENDING_LIMIT, requestsSection } from "./env/requests.js";
import { rolloutBar, rolloutWatch } from "./env/rollout.js";
import { settingsSection } from "./env/settings.js";

// The sections an env tab keeps when switching to another env of the app.
const KEPT_SECTIONS = new Set(["history", "instances", "requests", "settings"]);

function liveIndicator() {
  const dot = h("span", { class: "live-dot", "aria-hidden": "true" });
  const text = h("span", { class: "live-text" });
  const el = h(
    "span",
    { class: "live", title: "Updates from other operators arrive here as they happen" },
    dot,
    text,
  );
  const stop = live.onState((state) => {
    el.dataset.state = state;
    text.textContent =
      state === "live" ? "Live" : state === "offline" ? "Offline, retrying…" : "Connecting…";
  });
  return { el, stop };
}

function tabs(label, entries) {
  return h(
    "nav",
    { class: "tabs", "aria-label": label },
    entries.map(([label, href, current]) =>
      h("a", { class: "tab", href, "aria-current": current ? "page" : null }, label),
    ),
  );
}

/** Tell who made a release that this page did not make, then bring the section up to date. */
async function announce(ctx, frame) {
  const { app, env, base } = ctx;
  ctx.latest = frame.version;
  if (await isOwnRelease(app, env, frame.version)) return;
  let detail = null;
  try {
    detail = await api("GET", `${base}/releases/${frame.version}`);
  } catch {
    detail = null;
  }
  const who = detail ? detail.author : "someone";
  const what = detail?.rollback_of
    ? `rolled back ${app}/${env} to v${detail.rollback_of}`
    : detail?.gray?.status === "promoted"
      ? `promoted the gray release of ${app}/${env} to everyone`
      : `published ${app}/${env}`;
  const note = detail?.comment ? `: “${detail.comment}”.` : ".";
  flash(`${who} ${what} as v${frame.version}${note} The page is up to date.`, "live", {
    title: `New release v${frame.version}.`,
    timeout: 15000,
  });
  await ctx.refresh({ fromLive: true });
}

/**
 * #/apps/APP/ENV[/history | /releases/V | /compare/A/B | /instances | /requests | /settings]. Each
 * section sets ctx.refresh (run when a release arrives) and keeps ctx.latest, the newest
 * version it knows. ctx.settings is the env as `GET …/envs/{env}` shows it.
 */
export async function envView(main, params) {
  const { app, env, section } = params;
  const base = envPath(app, env);
  const [info, firstDiff, settings, pending] = await Promise.all([
    api("GET", `/apps/${seg(app)}`),
    api("GET", `${base}/diff`),
    api("GET", base),
    api("GET", `${base}/release-requests?status=pending&limit=${PENDING_LIMIT}`),
  ]);
  if (!info.envs.includes(env))
    throw new ApiError(404, "not_found", `env ${env} of app ${app} not found`);

  const indicator = liveIndicator();
  const sectionBody = h("div", { class: "section-body" });
  const tabBox = h("div", { class: "env-bar" });
  const ctx = {
    app,
    env,
    base,
    info,
    settings,
    pendingCount: pending.requests.length,
    latest: firstDiff.base_version,
    refresh: async () => {},
    /** Run when the active gray release changed (started, widened or ended, here or elsewhere). */
    onGray: () => {},
    stop: () => {},
    /** Show a new number of pending requests on the Requests tab. */
    setPendingCount(count) {
      if (count === ctx.pendingCount) return;
      ctx.pendingCount = count;
      renderTabs();
    },
    /** Read the number of pending requests again (after making one). */
    async refreshPendingCount() {
      const page = await api(
        "GET",
        `${base}/release-requests?status=pending&limit=${PENDING_LIMIT}`,
      );
      ctx.setPendingCount(page.requests.length);
    },
    /** Take the env's new settings (approvals turned on or off). */
    setSettings(next) {
      ctx.settings = next;
      renderTabs();
    },
  };

  function renderTabs() {
    const count = ctx.pendingCount;
    const showRequests = ctx.settings.approval_required || count > 0 || section === "requests";
    const requestsLabel = [
      "Requests",
      count
        ? badge(count >= PENDING_LIMIT ? `${PENDING_LIMIT}+` : String(count), "warn", {
            class: "badge badge-warn tab-count",
          })
        : null,
      count ? h("span", { class: "sr-only", text: " pending" }) : null,
    ];
    replace(
      tabBox,
      info.envs.length > 1
        ? tabs(
            "Envs",
            info.envs.map((e) => [
              e,
              envHref(app, e, KEPT_SECTIONS.has(section) ? section : ""),
              e === env,
            ]),
          )
        : null,
      tabs(
        "Sections",
        [
          ["Draft", envHref(app, env), section === "draft"],
          [
            "History",
            envHref(app, env, "history"),
            ["history", "release", "compare"].includes(section),
          ],
          ["Instances", envHref(app, env, "instances"), section === "instances"],
          showRequests
            ? [requestsLabel, envHref(app, env, "requests"), section === "requests"]
            : null,
          me.may(app, "manage")
            ? ["Settings", envHref(app, env, "settings"), section === "settings"]
            : null,
        ].filter(Boolean),
      ),
    );
  }

  ctx.rollout = rolloutWatch(ctx);
  const bar = rolloutBar(ctx.rollout);
  const gray = grayPanel(ctx);
  const rolloutCard = h(
    "section",
    { class: "card rollout-card", "aria-label": "Rollout" },
    bar.el,
    gray.el,
  );
  const showRollout = () => {
    rolloutCard.hidden = bar.el.hidden && gray.el.hidden;
  };
  showRollout();
  ctx.rollout.onChange((_state, { grayChanged }) => {
    showRollout();
    if (grayChanged) ctx.onGray();
  });

  replace(
    main,
    pageHead({
      crumbs: [
        ["Apps", "#/apps"],
        [app, `#/apps/${seg(app)}`],
        [env, null],
      ],
      title: `${app} / ${env}`,
      extra: indicator.el,
    }),
    tabBox,
    rolloutCard,
    sectionBody,
  );
  renderTabs();

  const stopWatch = live.watch(app, env, ctx.latest ?? 0, (frame) => announce(ctx, frame));

  if (section === "draft") await draftSection(sectionBody, ctx, firstDiff);
  else if (section === "history") await historySection(sectionBody, ctx);
  else if (section === "release") await releaseSection(sectionBody, ctx, Number(params.a));
  else if (section === "compare")
    await compareSection(sectionBody, ctx, Number(params.a), Number(params.b));
  else if (section === "instances") await instancesSection(sectionBody, ctx);
  else if (section === "requests") await requestsSection(sectionBody, ctx);
  else if (section === "settings") await settingsSection(sectionBody, ctx);

  ctx.rollout.start();

  return () => {
    ctx.rollout.stop();
    ctx.stop();
    stopWatch();
    indicator.stop();
  };
}
