// DOM building without innerHTML: every piece of data becomes a text node.

let counter = 0;

/** A page-unique element id. */
export function uid(prefix = "id") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** Append children (nodes, strings, numbers, arrays; null and false are skipped). */
export function append(el, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/**
 * Create an element. attrs: class, text, value, checked, disabled, hidden, dataset,
 * on<event> handlers, anything else as an attribute.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = String(value);
    else if (name === "value") el.value = String(value);
    else if (name === "checked" || name === "disabled" || name === "hidden")
      el[name] = Boolean(value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  return append(el, children);
}

/** Remove every child. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace an element's children. */
export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const dayTime = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const withYear = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "just now", "5 min ago", "3 h ago", "in 2 h", else a short date. */
export function relativeTime(value) {
  const date = toDate(value);
  if (date === null) return "—";
  const seconds = (Date.now() - date.getTime()) / 1000;
  if (seconds < -45 && seconds > -86400) {
    const ahead = -seconds;
    return ahead < 3600 ? `in ${Math.round(ahead / 60)} min` : `in ${Math.round(ahead / 3600)} h`;
  }
  if (seconds < 45 && seconds > -45) return "just now";
  if (seconds < 0) {
    const sameYear = date.getFullYear() === new Date().getFullYear();
    return sameYear ? dayTime.format(date) : withYear.format(date);
  }
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  const sameYear = date.getFullYear() === new Date().getFullYear();
  return sameYear ? dayTime.format(date) : withYear.format(date);
}

/** A <time> element: relative text, the exact time as its tooltip. */
export function timeEl(value) {
  const date = toDate(value);
  if (date === null) return h("span", { class: "muted", text: "—" });
  return h("time", {
    datetime: date.toISOString(),
    title: absolute.format(date),
    text: relativeTime(value),
  });
}

/** The exact local time as text. */
export function exactTime(value) {
  const date = toDate(value);
  return date === null ? "—" : absolute.format(date);
}

/** Plural helper: plural(2, "item") -> "2 items". */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}
