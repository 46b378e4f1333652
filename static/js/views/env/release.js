// One release of an env: its items and details, compare with the latest, roll back.

import { api, me } from "../../api.js";
import { exactTime, h, replace } from "../../dom.js";
import { compareHref, envHref } from "../../links.js";
import { badge, button, emptyState, secretBadge, secretValue, table } from "../../ui.js";
import { rollbackDialog } from "./rollback.js";
import { ruleText } from "./rollout.js";
import { secretKeys } from "./secrets.js";

function details(release) {
  const entry = (term, ...value) => h("div", {}, h("dt", { text: term }), h("dd", {}, value));
  return h(
    "dl",
    { class: "meta" },
    entry("Author", release.author),
    entry("Published", exactTime(release.created_at)),
    entry("Comment", release.comment || "No comment"),
    release.gray
      ? entry("Gray release", `${release.gray.status}, to ${ruleText(release.gray.rule)}`)
      : null,
    entry("Checksum", h("code", { class: "checksum", text: release.checksum })),
  );
}

/** #/apps/APP/ENV/releases/V */
export async function releaseSection(root, ctx, version) {
  const { app, env, base } = ctx;
  const [release, secrets] = await Promise.all([
    api("GET", `${base}/releases/${version}`),
    secretKeys(base),
  ]);
  const flagged = new Set(release.secret_keys ?? []);
  const isSecret = (k, v) => v === null || secrets.has(k) || flagged.has(k);
  const box = h("div", {});
  const entries = Object.entries(release.items).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  // Rendered again when a release arrives: "latest" and the actions follow ctx.latest.
  const render = () => {
    const isLatest = release.version === ctx.latest;
    replace(
      box,
      h(
        "section",
        { class: "card" },
        h(
          "div",
          { class: "card-head" },
          h(
            "h2",
            { class: "card-title" },
            `Release v${release.version} `,
            isLatest ? badge("latest", "ok") : null,
            release.rollback_of ? badge(`rollback of v${release.rollback_of}`, "muted") : null,
          ),
          h(
            "div",
            { class: "card-actions" },
            h("a", { class: "btn", href: envHref(app, env, "history"), text: "All releases" }),
            !isLatest && ctx.latest
              ? h("a", {
                  class: "btn",
                  href: compareHref(app, env, release.version, ctx.latest),
                  text: `Compare with v${ctx.latest}`,
                })
              : null,
            !isLatest && me.may(app, "publish")
              ? button(
                  "Roll back",
                  async () => {
                    if (await rollbackDialog(ctx, release.version))
                      window.location.hash = envHref(app, env, "history");
                  },
                  { kind: "danger" },
                )
              : null,
          ),
        ),
        details(release),
        entries.length
          ? table(
              [
                {
                  label: "Key",
                  cls: "col-key",
                  cell: ([k, v]) => [
                    h("code", { class: "key", text: k }),
                    isSecret(k, v) ? secretBadge() : null,
                  ],
                },
                {
                  label: "Value",
                  cls: "col-value",
                  cell: ([k, v]) =>
                    isSecret(k, v)
                      ? secretValue(v, { label: k })
                      : h("pre", { class: "value", text: v }),
                },
              ],
              entries,
              {
                caption: `Items of v${release.version}`,
                rowAttrs: ([k]) => ({ dataset: { key: k } }),
              },
            )
          : emptyState("This release has no items", "Clients reading it get an empty config."),
      ),
    );
  };
  ctx.refresh = async () => render();
  render();
  replace(root, box);
}
