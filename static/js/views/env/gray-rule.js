// Picking a gray release's rule from what is live: label pairs seen on the env's instances, the
// instances themselves, a percent; and the server's preview of how many it would take now.

import { api } from "../../api.js";
import { h, plural, replace, uid } from "../../dom.js";
import { button } from "../../ui.js";

const PREVIEW_DELAY_MS = 200;

/** The label pairs the instances carry, "k=v" -> { key, value, count }, sorted. */
function seenLabels(instances) {
  const pairs = new Map();
  for (const instance of instances) {
    for (const [key, value] of Object.entries(instance.labels || {})) {
      const id = `${key}=${value}`;
      const pair = pairs.get(id) || { key, value, count: 0 };
      pair.count += 1;
      pairs.set(id, pair);
    }
  }
  return [...pairs.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The rule editor. initial: the rule to start from (widening: its percent is the slider's
 * floor and its instances stay ticked). Returns { el, rule(), isEmpty(), matched() }:
 * matched() is the last preview's { matched, total } or null.
 */
export function ruleEditor(ctx, { initial = {}, widen = false } = {}) {
  const instances = ctx.rollout.state.instances;
  const labels = new Map(Object.entries(initial.labels || {}));
  const kept = new Set(initial.instances || []);
  const floor = widen ? initial.percent || 0 : 0;
  const preview = h("p", { class: "gray-preview", role: "status", "aria-live": "polite" });
  let last = null;
  let timer = null;
  let asked = 0;

  // Labels: chips of the chosen pairs, and a list of the pairs instances carry.
  const chips = h("div", { class: "chips gray-chips" });
  const pick = h("select", { id: uid("label"), class: "gray-label-pick" });
  const renderLabels = () => {
    replace(
      chips,
      labels.size
        ? [...labels.entries()].map(([k, v]) =>
            h(
              "span",
              { class: "chip chip-static gray-chip" },
              `${k}=${v}`,
              h("button", {
                type: "button",
                class: "chip-remove",
                "aria-label": `Remove label ${k}=${v}`,
                text: "×",
                onclick: () => {
                  labels.delete(k);
                  renderLabels();
                  changed();
                },
              }),
            ),
          )
        : h("span", { class: "muted", text: "No labels chosen." }),
    );
    const offered = seenLabels(instances).filter(([, p]) => labels.get(p.key) !== p.value);
    replace(
      pick,
      h("option", {
        value: "",
        text: offered.length ? "Choose a label…" : "No other labels on live instances",
      }),
      offered.map(([id, p]) =>
        h("option", { value: id, text: `${id} (${plural(p.count, "instance")})` }),
      ),
    );
    pick.disabled = !offered.length;
  };
  const addLabel = button("Add label", () => {
    const [key, ...rest] = pick.value.split("=");
    if (!key) return;
    labels.set(key, rest.join("="));
    renderLabels();
    changed();
  });

  // Instances: the live ones (and any the rule names that are gone), ticked when chosen.
  const ids = [...new Set([...instances.map((i) => i.instance), ...kept])].sort();
  const byId = new Map(instances.map((i) => [i.instance, i]));
  const boxes = ids.map((id) => {
    const boxId = uid("inst");
    const input = h("input", {
      id: boxId,
      type: "checkbox",
      value: id,
      checked: kept.has(id),
      disabled: widen && kept.has(id),
      onchange: () => changed(),
    });
    const info = byId.get(id);
    const detail = info
      ? Object.entries(info.labels || {})
          .map(([k, v]) => `${k}=${v}`)
          .join(", ")
      : "not connected";
    return h(
      "li",
      { class: "gray-instance" },
      input,
      h("label", { for: boxId }, h("code", { text: id })),
      detail ? h("span", { class: "muted gray-instance-labels", text: detail }) : null,
    );
  });

  // Percent: a stable share of instance ids; raising it keeps everyone already in.
  const sliderId = uid("pct");
  const slider = h("input", {
    id: sliderId,
    type: "range",
    min: floor,
    max: 100,
    step: 1,
    value: initial.percent ?? floor,
    class: "gray-percent",
  });
  const shown = h("output", { for: sliderId, class: "gray-percent-value" });
  const showPercent = () => {
    shown.textContent = `${slider.value} %`;
  };
  slider.addEventListener("input", () => {
    showPercent();
    changed();
  });

  function rule() {
    const made = {};
    if (labels.size) made.labels = Object.fromEntries(labels);
    const chosen = boxes.map((li) => li.querySelector("input")).filter((i) => i.checked);
    if (chosen.length) made.instances = chosen.map((i) => i.value);
    const percent = Number(slider.value);
    if (percent > 0 || initial.percent !== undefined) made.percent = percent;
    return made;
  }

  const isEmpty = () => Object.keys(rule()).length === 0;

  async function ask() {
    asked += 1;
    const mine = asked;
    if (isEmpty()) {
      last = null;
      preview.textContent = "Choose labels, instances or a percent.";
      return;
    }
    try {
      const answer = await api("POST", `${ctx.base}/gray/preview`, { rule: rule() });
      if (mine !== asked) return;
      last = answer;
      preview.textContent = `Would match ${answer.matched} of ${plural(answer.total, "live instance")}`;
      preview.dataset.matched = answer.matched;
    } catch (error) {
      if (mine !== asked) return;
      last = null;
      preview.textContent = `No preview: ${error.message || error}`;
    }
  }

  function changed() {
    delete preview.dataset.matched;
    preview.textContent = "Counting the instances it would take…";
    clearTimeout(timer);
    timer = setTimeout(ask, PREVIEW_DELAY_MS);
  }

  const group = (legend, hint, ...body) =>
    h(
      "fieldset",
      { class: "gray-group" },
      h("legend", { text: legend }),
      hint ? h("p", { class: "hint", text: hint }) : null,
      body,
    );

  const el = h(
    "div",
    { class: "gray-rule stack" },
    h("p", {
      class: "hint",
      text: "An instance gets the gray release when it matches any of these.",
    }),
    group(
      "Labels",
      "Instances that carry every chosen label.",
      chips,
      h(
        "div",
        { class: "gray-label-add" },
        h("label", { for: pick.id, class: "sr-only", text: "Label to add" }),
        pick,
        addLabel,
      ),
    ),
    group(
      "Instances",
      widen && kept.size ? "Instances already in stay in." : null,
      ids.length
        ? h("ul", { class: "gray-instances" }, boxes)
        : h("p", { class: "muted", text: "No identified instances are connected." }),
    ),
    group(
      "Percent of instances",
      widen && floor ? `It only goes up from ${floor} %.` : "A stable share of instance ids.",
      h(
        "div",
        { class: "gray-percent-row" },
        h("label", { for: sliderId, class: "sr-only", text: "Percent of instances" }),
        slider,
        shown,
      ),
    ),
    preview,
  );
  renderLabels();
  showPercent();
  ask();
  return { el, rule, isEmpty, matched: () => last };
}

/**
 * In the publish dialog: everyone, or a gray release to the instances of a rule. Returns
 * { el, gray(), editor() }; onToggle(gray) runs when the choice changes (the editor is made,
 * and asks for its first preview, the first time gray is chosen).
 */
export function grayChoice(ctx, onToggle) {
  const name = uid("target");
  let editor = null;
  const box = h("div", { class: "gray-choice-rule", hidden: true });
  const option = (value, label, hint, checked) => {
    const id = uid("target");
    return h(
      "div",
      { class: "check" },
      h("input", { id, type: "radio", name, value, checked }),
      h("label", { for: id, text: label }),
      h("p", { class: "hint", text: hint }),
    );
  };
  const el = h(
    "fieldset",
    { class: "gray-choice" },
    h("legend", { text: "Who gets it" }),
    option("all", "Everyone", "Every instance and reader gets the new version.", true),
    option(
      "gray",
      "Only some instances first (gray release)",
      "The instances you choose get it; everyone else keeps the current release until you promote it.",
      false,
    ),
    box,
  );
  const gray = () => el.querySelector(`input[name="${name}"]:checked`)?.value === "gray";
  el.addEventListener("change", async (event) => {
    if (event.target.name !== name) return;
    if (gray() && !editor) {
      // The labels and instances to pick from are the live ones: read them first if the
      // rollout has not been read yet.
      if (!ctx.rollout.state.loaded) await ctx.rollout.refresh().catch(() => null);
      if (editor) return;
      editor = ruleEditor(ctx);
      box.append(editor.el);
    }
    box.hidden = !gray();
    onToggle(gray());
  });
  return { el, gray, editor: () => editor };
}
