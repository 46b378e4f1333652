// The active gray release of an env: its rule and how many instances it takes, and its course
// from this page (publishers): widen the rule, promote it to everyone, or abandon it.

import { ApiError, api, me } from "../../api.js";
import { h, plural, replace } from "../../dom.js";
import {
  busy,
  button,
  confirmAction,
  dialogActions,
  dialogAlert,
  diffMaps,
  diffView,
  flash,
  openDialog,
  setAlert,
} from "../../ui.js";
import { ruleEditor } from "./gray-rule.js";
import { ownRelease } from "./publish.js";
import { ruleText } from "./rollout.js";
import { secretKeys } from "./secrets.js";

/** The gray release and its main release with their items, and the env's secret keys. */
async function bothReleases(ctx, gray) {
  const [grayRelease, mainRelease, secrets] = await Promise.all([
    api("GET", `${ctx.base}/releases/${gray.version}`),
    api("GET", `${ctx.base}/releases/${gray.main_version}`),
    secretKeys(ctx.base),
  ]);
  for (const key of [...(grayRelease.secret_keys ?? []), ...(mainRelease.secret_keys ?? [])])
    secrets.add(key);
  return { grayRelease, mainRelease, secrets };
}

/** Widen the rule: the editor from the current rule, its preview, then PATCH …/gray. */
async function widenDialog(ctx, gray) {
  const { app, env, base } = ctx;
  const done = await openDialog({
    title: `Widen gray release v${gray.version}`,
    wide: true,
    build(root, close) {
      const editor = ruleEditor(ctx, { initial: gray.rule, widen: true });
      const alert = dialogAlert();
      const ok = button("Widen", null, { kind: "primary", type: "submit" });
      const form = h(
        "form",
        { class: "stack", novalidate: true },
        h("p", {
          text: `Now: ${ruleText(gray.rule)}. A gray release only takes more instances: the newly matching ones get v${gray.version} at once.`,
        }),
        editor.el,
        alert,
        dialogActions(close, ok),
      );
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        setAlert(alert, null);
        try {
          close(await busy(ok, () => api("PATCH", `${base}/gray`, { rule: editor.rule() })));
        } catch (error) {
          const narrowing = error instanceof ApiError && error.code === "gray_narrowing";
          setAlert(
            alert,
            narrowing
              ? `Not widened: ${error.message}. Remove label pairs, add instances or raise the percent instead.`
              : error.message || String(error),
          );
        }
      });
      root.append(form);
    },
  });
  if (done)
    flash(
      `Gray release v${done.version} of ${app}/${env} now goes to ${ruleText(done.gray.rule)}.`,
      "success",
    );
  return done;
}

/** Promote: what everyone else will see change, then POST …/gray/promote. */
async function promoteDialog(ctx, gray) {
  const { app, env, base } = ctx;
  const { grayRelease, mainRelease, secrets } = await bothReleases(ctx, gray);
  const others = ctx.rollout.state.summary.by_version?.[gray.main_version] || 0;
  const done = await confirmAction({
    title: `Promote v${gray.version} to everyone?`,
    wide: true,
    body: h(
      "div",
      { class: "stack" },
      h("p", {
        text: `Every instance and reader gets v${gray.version}, as the gray release's instances have it now${others ? ` (${plural(others, "live instance")} still run v${gray.main_version})` : ""}. No new version is made.`,
      }),
      h("h3", {
        class: "sub-title",
        text: `What the others will see change (v${gray.main_version} → v${gray.version})`,
      }),
      h(
        "div",
        { class: "dialog-diff" },
        diffView(diffMaps(mainRelease.items, grayRelease.items), {
          emptyText: `v${gray.version} has the same items as v${gray.main_version}.`,
          secrets,
        }),
      ),
    ),
    comment: { label: "Comment", placeholder: "Why it is good to go" },
    confirmText: "Promote",
    action: ({ comment }) =>
      ownRelease(app, env, () => api("POST", `${base}/gray/promote`, { comment })),
  });
  if (done) flash(`Promoted v${done.version} of ${app}/${env} to everyone.`, "success");
  return done;
}

/** Abandon: what the gray instances will see change, then POST …/gray/abandon. */
async function abandonDialog(ctx, gray) {
  const { app, env, base } = ctx;
  const { grayRelease, mainRelease, secrets } = await bothReleases(ctx, gray);
  const next = gray.version + 1;
  const done = await confirmAction({
    title: `Abandon gray release v${gray.version}?`,
    wide: true,
    body: h(
      "div",
      { class: "stack" },
      h("p", {
        text: `This publishes v${next} with the items of v${gray.main_version} for everyone: the instances running v${gray.version} go back to them. The draft keeps v${gray.version}'s changes.`,
      }),
      h("h3", {
        class: "sub-title",
        text: `What the gray release's instances will see change (v${gray.version} → v${next})`,
      }),
      h(
        "div",
        { class: "dialog-diff" },
        diffView(diffMaps(grayRelease.items, mainRelease.items), {
          emptyText: `v${gray.version} has the same items as v${gray.main_version}.`,
          secrets,
        }),
      ),
    ),
    comment: { label: "Comment", placeholder: "What went wrong" },
    confirmText: "Abandon",
    danger: true,
    action: ({ comment }) =>
      ownRelease(app, env, () => api("POST", `${base}/gray/abandon`, { comment })),
  });
  if (done)
    flash(
      `Abandoned gray release v${gray.version} of ${app}/${env}: everyone gets v${gray.main_version}'s items as v${done.version}.`,
      "success",
    );
  return done;
}

/**
 * The active gray release's panel: built again when the gray release changes, its counts
 * updated in place at every read (so a button is never replaced under the pointer).
 */
export function grayPanel(ctx) {
  const watch = ctx.rollout;
  const el = h("div", { class: "gray-panel", hidden: true });
  const counts = h("p", { class: "gray-counts" });
  let built = "";

  const act = (label, dialog, kind) =>
    button(
      label,
      async (event) => {
        const gray = watch.state.gray;
        if (!gray) return;
        const made = await busy(event.currentTarget, () => dialog(ctx, gray));
        if (made) {
          await watch.refresh().catch(() => null);
          await ctx.refresh().catch(() => null);
        }
      },
      { kind, small: true },
    );

  function render(state) {
    const gray = state.gray;
    const key = gray ? `${gray.version}/${JSON.stringify(gray.rule)}` : "";
    if (key !== built) {
      built = key;
      el.hidden = !gray;
      if (!gray) {
        replace(el);
      } else {
        replace(
          el,
          h(
            "div",
            { class: "gray-panel-text" },
            h(
              "p",
              { class: "gray-title" },
              h("span", { class: "badge badge-warn", text: `Gray release v${gray.version}` }),
              h(
                "span",
                { class: "gray-rule-text" },
                "to ",
                h("strong", { text: ruleText(gray.rule) }),
              ),
            ),
            counts,
          ),
          me.may(ctx.app, "publish")
            ? h(
                "div",
                { class: "gray-actions" },
                act("Widen", widenDialog, ""),
                act("Abandon", abandonDialog, "ghost-danger"),
                act("Promote", promoteDialog, "primary"),
              )
            : null,
        );
      }
    }
    if (!gray) return;
    if (!state.loaded) {
      counts.textContent = `Everyone else keeps v${gray.main_version}.`;
      return;
    }
    const running = state.summary.by_version?.[gray.version] || 0;
    counts.textContent = `Its rule takes ${state.matched.size} of ${plural(state.summary.total || 0, "live instance")}; ${running} run v${gray.version}. Everyone else keeps v${gray.main_version}.`;
    counts.dataset.matched = state.matched.size;
  }

  const stop = watch.onChange((state) => render(state));
  render(watch.state);
  return { el, stop };
}
