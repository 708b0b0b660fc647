// What every page of the workspace shares: element helpers, the API client, status labels, and an
// accessible confirmation dialog. No build step and nothing from the network but this site.

export const STATUS_LABELS = {
  draft: "Draft",
  pending: "Pending",
  queued: "Queued",
  rendering: "Rendering",
  assembling: "Assembling",
  completed: "Completed",
  failed: "Failed",
  cancelled: "Cancelled",
};
export const ACTIVE = new Set(["queued", "rendering", "assembling"]);
export const FINISHED = new Set(["completed", "failed", "cancelled"]);
export const NIL_UUID = "00000000-0000-0000-0000-000000000000";

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

export function readConfig() {
  const element = document.getElementById("workspace-config");
  return element ? JSON.parse(element.textContent) : null;
}

export function csrfToken() {
  const input = $("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

// fetch() against our API. Never throws: returns {ok, status, data}, where data is the JSON body
// (the API's error shape {detail, code, errors?} on failure) or a made-up {detail} when there is none.
export async function api(method, url, body) {
  const headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, { method, headers, body: payload, credentials: "same-origin" });
  } catch {
    return { ok: false, status: 0, data: { detail: "The server could not be reached. Check the connection and try again." } };
  }
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = { detail: `The server answered ${response.status} ${response.statusText}.` };
    }
  }
  return { ok: response.ok, status: response.status, data };
}

// The first message of an API error, for one line of text.
export function errorText(result) {
  const data = result.data || {};
  if (data.errors) {
    const first = Object.values(data.errors)[0];
    if (Array.isArray(first) && first.length) return first.join(" ");
  }
  return data.detail || `The request failed (${result.status}).`;
}

export function statusLabel(status) {
  return STATUS_LABELS[status] || status;
}

export function setBadge(element, status) {
  element.textContent = statusLabel(status);
  element.className = element.className.replace(/\bstatus-\S+/g, "").trim() + ` status-${status}`;
  element.dataset.status = status;
}

export function formatMoney(value) {
  return `$${Number(value).toFixed(2)}`;
}

export function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

export function formatSeconds(total) {
  const seconds = Math.max(0, Math.round(total));
  const minutes = Math.floor(seconds / 60);
  const rest = seconds % 60;
  return minutes ? `${minutes} min ${String(rest).padStart(2, "0")} s` : `${rest} s`;
}

export function jobUrl(template, id) {
  return template.replace(NIL_UUID, id);
}

// Ask before something that cannot be undone. A modal <dialog>: focus moves into it, Escape keeps
// things as they are, and focus returns to the button that asked. Resolves true to go ahead.
export function confirmAction({ title, text, confirm, cancel = "Keep it", testid = "confirm" }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.dataset.testid = `${testid}-dialog`;
    dialog.setAttribute("aria-labelledby", `${testid}-title`);
    dialog.setAttribute("aria-describedby", `${testid}-text`);
    const heading = document.createElement("h2");
    heading.id = `${testid}-title`;
    heading.textContent = title;
    const body = document.createElement("p");
    body.id = `${testid}-text`;
    body.textContent = text;
    const actions = document.createElement("div");
    actions.className = "actions";
    const no = document.createElement("button");
    no.type = "button";
    no.className = "secondary";
    no.textContent = cancel;
    no.dataset.testid = `${testid}-cancel`;
    const yes = document.createElement("button");
    yes.type = "button";
    yes.className = "danger-button";
    yes.textContent = confirm;
    yes.dataset.testid = `${testid}-ok`;
    actions.append(no, yes);
    dialog.append(heading, body, actions);
    document.body.append(dialog);
    let answer = false;
    no.addEventListener("click", () => dialog.close());
    yes.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      if (opener && typeof opener.focus === "function") opener.focus();
      resolve(answer);
    });
    dialog.showModal();
    no.focus(); // the safe choice has the focus
  });
}
