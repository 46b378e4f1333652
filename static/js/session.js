// When the session ends elsewhere (signed out, password changed, disabled, expired), the page
// stays as it is, with whatever the user typed, and a banner offers to sign in again in a new
// tab. Once a session works again the page takes its CSRF token and carries on.

import { me, onSessionEnded, setCsrfToken } from "./api.js";
import { h, replace } from "./dom.js";

const CHECK_EVERY_MS = 2000;

let ended = false;
let timer = null;
let banner = null;
const resumeListeners = new Set();

/** True while the session has ended and no new one was found. */
export function sessionEnded() {
  return ended;
}

/** Run listener() when a new session is found after one ended. */
export function onSessionResumed(listener) {
  resumeListeners.add(listener);
  return () => resumeListeners.delete(listener);
}

/** The admin page shell as the current cookie gets it: its user and CSRF token, or null. */
async function currentShell() {
  let response;
  try {
    // Not following the redirect to /login: that would give the sign-in form of another tab
    // a new double-submit cookie and make it fail.
    response = await fetch("/", {
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual",
    });
  } catch {
    return null;
  }
  if (!response.ok) return null;
  const doc = new DOMParser().parseFromString(await response.text(), "text/html");
  const token = doc.querySelector('meta[name="csrf-token"]')?.getAttribute("content");
  const user = doc.body?.dataset.user;
  if (!token || !user) return null;
  return { token, user, session: Number(doc.body.dataset.session) || null };
}

function region() {
  return document.getElementById("session-region");
}

function showBanner(otherUser) {
  const link = h("a", {
    class: "btn btn-primary btn-small",
    href: "/login",
    target: "_blank",
    rel: "noopener",
    text: "Sign in again",
  });
  const text = otherUser
    ? [
        h("strong", { text: `Signed in as ${otherUser} in another tab.` }),
        ` This page belongs to ${me.name}: reload it to work as ${otherUser}.`,
      ]
    : [
        h("strong", { text: "Your session ended — sign in again." }),
        " Sign in in a new tab; this page keeps what you typed and continues once you are back.",
      ];
  banner = h(
    "div",
    { class: "banner banner-error session-banner", "data-session-ended": "true" },
    h("div", { class: "banner-text" }, text),
    otherUser
      ? h("button", {
          type: "button",
          class: "btn btn-small",
          text: "Reload",
          onclick: () => window.location.reload(),
        })
      : link,
  );
  replace(region(), banner);
}

async function check() {
  timer = null;
  if (!ended) return;
  const shell = await currentShell();
  if (shell && shell.user === me.name) {
    ended = false;
    setCsrfToken(shell.token);
    me.sessionId = shell.session;
    replace(region());
    banner = null;
    for (const listener of resumeListeners) listener();
    return;
  }
  if (shell) showBanner(shell.user);
  schedule();
}

function schedule() {
  if (ended && timer === null) timer = setTimeout(check, CHECK_EVERY_MS);
}

onSessionEnded(() => {
  if (ended) return;
  ended = true;
  showBanner(null);
  schedule();
});

window.addEventListener("focus", () => {
  if (ended) {
    clearTimeout(timer);
    check();
  }
});
