// One env: the page around its sections (views/env/: draft, history, release, compare), and
// the live channel that keeps the page current when someone publishes elsewhere.

import { ApiError, api, envPath, seg } from "../api.js";
import { h, replace } from "../dom.js";
import { envHref } from "../links.js";
import { live } from "../live.js";
import { flash, pageHead } from "../ui.js";
import { compareSection } from "./env/compare.js";
import { draftSection } from "./env/draft.js";
import { historySection } from "./env/history.js";
import { isOwnRelease } from "./env/publish.js";
import { releaseSection } from "./env/release.js";

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
    entries.map(([text, href, current]) =>
      h("a", { class: "tab", href, text, "aria-current": current ? "page" : null }),
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
    : `published ${app}/${env}`;
  const note = detail?.comment ? `: “${detail.comment}”.` : ".";
  flash(`${who} ${what} as v${frame.version}${note} The page is up to date.`, "live", {
    title: `New release v${frame.version}.`,
    timeout: 15000,
  });
  await ctx.refresh({ fromLive: true });
}

/**
 * #/apps/APP/ENV[/history | /releases/V | /compare/A/B]. Each section sets ctx.refresh
 * (run when a release arrives) and keeps ctx.latest, the newest version it knows.
 */
export async function envView(main, params) {
  const { app, env, section } = params;
  const base = envPath(app, env);
  const [info, firstDiff] = await Promise.all([
    api("GET", `/apps/${seg(app)}`),
    api("GET", `${base}/diff`),
  ]);
  if (!info.envs.includes(env))
    throw new ApiError(404, "not_found", `env ${env} of app ${app} not found`);

  const indicator = liveIndicator();
  const sectionBody = h("div", { class: "section-body" });
  const ctx = {
    app,
    env,
    base,
    info,
    latest: firstDiff.base_version,
    refresh: async () => {},
    stop: () => {},
  };

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
    h(
      "div",
      { class: "env-bar" },
      info.envs.length > 1
        ? tabs(
            "Envs",
            info.envs.map((e) => [
              e,
              envHref(app, e, section === "history" ? "history" : ""),
              e === env,
            ]),
          )
        : null,
      tabs("Sections", [
        ["Draft", envHref(app, env), section === "draft"],
        ["History", envHref(app, env, "history"), section !== "draft"],
      ]),
    ),
    sectionBody,
  );

  const stopWatch = live.watch(app, env, ctx.latest ?? 0, (frame) => announce(ctx, frame));

  if (section === "draft") await draftSection(sectionBody, ctx, firstDiff);
  else if (section === "history") await historySection(sectionBody, ctx);
  else if (section === "release") await releaseSection(sectionBody, ctx, Number(params.a));
  else if (section === "compare")
    await compareSection(sectionBody, ctx, Number(params.a), Number(params.b));

  return () => {
    ctx.stop();
    stopWatch();
    indicator.stop();
  };
}
