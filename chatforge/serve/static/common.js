// common.js: what every page shares: JSON fetch helpers, a tiny DOM builder, the top bar, and the login form.
//
// Stable hooks (every page has them):
//   #topbar                  the header; #nav-chat, #nav-rate, #nav-admin links (rate: role rater/admin,
//                            admin: role admin; hidden otherwise); #user-name; #logout (button)
//   #auth-panel              shown when GET /api/me is 401; this file builds in it form #login-form with
//                            #login-name, #login-password, #login-submit (log in, also Enter),
//                            #signup-submit (create account), #login-error (the server's error message);
//                            after signing in on /?next=/admin (the server's redirect) it goes to /admin
//   #app                     the page itself, hidden until signed in
//   #forbidden               shown instead of #app when the user's role may not use the page
//   #page-error              page-level errors (e.g. the server is unreachable)
// Pages mark themselves ready with document.body.dataset.ready = "1" once the first render is done.

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

// the message of an error body {"error": {"message"}} (or FastAPI's {"detail"}), else the HTTP status
export function errorMessage(body, res) {
  const err = body && body.error;
  if (err && typeof err.message === "string" && err.message) return err.message;
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail) && body.detail[0] && body.detail[0].msg) return body.detail[0].msg;
  return res ? `request failed: ${res.status} ${res.statusText}`.trim() : "request failed";
}

export async function readJson(res) {
  const text = await res.text();
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    return { error: { message: res.ok ? "the server sent something that is not JSON" : "" } };
  }
}

// the fetch options every call uses: same-origin cookie, JSON body when there is one
export function requestInit(method, body, signal) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return init;
}

// fetch JSON; throws ApiError carrying the server's error message (status 0: the server could not be reached)
export async function api(path, { method = "GET", body, signal } = {}) {
  let res;
  try {
    res = await fetch(path, requestInit(method, body, signal));
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`cannot reach the server (${e.message})`, 0, null);
  }
  const data = await readJson(res);
  if (!res.ok) throw new ApiError(errorMessage(data, res) || `request failed: ${res.status}`, res.status, data);
  return data;
}

// h("button", {className: "x", text: "Go", dataset: {id: 3}, attrs: {type: "button"}, on: {click: f}}, ...children)
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === "text") el.textContent = String(v);
    else if (k === "className") el.className = v;
    else if (k === "dataset") Object.entries(v).forEach(([dk, dv]) => { el.dataset[dk] = String(dv); });
    else if (k === "attrs") Object.entries(v).forEach(([ak, av]) => el.setAttribute(ak, String(av)));
    else if (k === "on") Object.entries(v).forEach(([ev, fn]) => el.addEventListener(ev, fn));
    else el[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return el;
}

// small stroke icons drawn as inline SVG, so no icon font or emoji font is needed
const ICONS = {
  up: "M3 10h4v11H3zM7 10l4-8c1.7 0 3 1.3 3 3v4h5.5c1.2 0 2.1 1.1 1.9 2.3l-1.4 8c-.2 1-1 1.7-2 1.7H7",
  down: "M3 14h4V3H3zM7 14l4 8c1.7 0 3-1.3 3-3v-4h5.5c1.2 0 2.1-1.1 1.9-2.3l-1.4-8c-.2-1-1-1.7-2-1.7H7",
  edit: "M4 20h4L19 9l-4-4L4 16zM13 7l4 4",
  trash: "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6",
  regenerate: "M20 12a8 8 0 1 1-2.3-5.7M20 4v5h-5",
  stop: "M7 7h10v10H7z",
  menu: "M4 6h16M4 12h16M4 18h16",
};

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon-svg");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", ICONS[name]);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linecap", "round");
  path.setAttribute("stroke-linejoin", "round");
  svg.appendChild(path);
  return svg;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function showError(el, err) {
  if (!el) return;
  const message = err ? (typeof err === "string" ? err : err.message || String(err)) : "";
  el.textContent = message;
  el.hidden = !message;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

export function canRate(user) {
  return !!user && (user.role === "rater" || user.role === "admin");
}

export function canAdmin(user) {
  return !!user && user.role === "admin";
}

export function fmtNumber(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(Number(x))) return "–";
  return Number(x).toLocaleString(undefined, { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtPercent(x) {
  if (x === null || x === undefined || !Number.isFinite(Number(x))) return "–";
  return (100 * Number(x)).toFixed(1) + "%";
}

function setTopbar(user) {
  const rate = $("#nav-rate"), admin = $("#nav-admin"), name = $("#user-name"), logout = $("#logout");
  if (rate) rate.hidden = !canRate(user);
  if (admin) admin.hidden = !canAdmin(user);
  if (name) name.textContent = user ? `${user.name} (${user.role})` : "";
  if (logout) logout.hidden = !user;
}

// Ask the server who is signed in; show the login form until someone is, then call onUser(user) once.
// allowed(user) false shows #forbidden instead of the page.
export async function startPage({ onUser, allowed = () => true }) {
  const panel = $("#auth-panel"), app = $("#app"), forbidden = $("#forbidden");
  const logout = $("#logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      try {
        await api("/api/auth/logout", { method: "POST", body: {} });
      } catch (e) {
        showError($("#page-error"), e);
        return;
      }
      window.location.reload();
    });
  }
  const enter = async (user) => {
    setTopbar(user);
    panel.hidden = true;
    if (!allowed(user)) {
      if (forbidden) forbidden.hidden = false;
      app.hidden = true;
      document.body.dataset.ready = "1";
      return;
    }
    app.hidden = false;
    try {
      await onUser(user);
    } catch (e) {
      showError($("#page-error"), e);
    }
    document.body.dataset.ready = "1";
  };
  let user = null;
  try {
    user = (await api("/api/me")).user;
  } catch (e) {
    if (e.status !== 401) showError($("#page-error"), e);
  }
  if (user) return enter(user);
  setTopbar(null);
  app.hidden = true;
  panel.hidden = false;
  setupLoginForm(enter);
  document.body.dataset.ready = "1";
}

// the sign-in form, built here so every page has the same one
function buildLoginForm(panel) {
  const field = (label, input) => h("label", { className: "field" }, h("span", { text: label }), input);
  const form = h("form", { id: "login-form", className: "card login-card", attrs: { novalidate: "" } },
    h("h1", { text: "Sign in to chatforge" }),
    h("p", { className: "muted", text: "Log in, or pick a name and password to create an account." }),
    field("Name", h("input", { id: "login-name", name: "name", autocomplete: "username", maxLength: 100,
      attrs: { required: "" } })),
    field("Password", h("input", { id: "login-password", name: "password", type: "password",
      autocomplete: "current-password", maxLength: 200, attrs: { required: "" } })),
    h("div", { id: "login-error", className: "error", hidden: true, attrs: { role: "alert" } }),
    h("div", { className: "row" },
      h("button", { id: "login-submit", className: "primary", text: "Log in", attrs: { type: "submit" } }),
      h("button", { id: "signup-submit", text: "Create account", attrs: { type: "button" } })));
  clear(panel);
  panel.appendChild(form);
}

function setupLoginForm(enter) {
  buildLoginForm($("#auth-panel"));
  const form = $("#login-form"), name = $("#login-name"), password = $("#login-password");
  const error = $("#login-error"), buttons = [$("#login-submit"), $("#signup-submit")];
  const submit = async (kind) => {
    showError(error, "");
    if (!name.value.trim() || !password.value) {
      showError(error, "enter a name and a password");
      return;
    }
    buttons.forEach((b) => { b.disabled = true; });
    try {
      const data = await api(`/api/auth/${kind}`, {
        method: "POST", body: { name: name.value.trim(), password: password.value },
      });
      password.value = "";
      // the server sends signed-out visitors of /rate and /admin to /?next=/rate: go back there
      const next = new URLSearchParams(window.location.search).get("next");
      if (next && /^\/(?!\/)[A-Za-z0-9_\-/]*$/.test(next) && next !== window.location.pathname) {
        window.location.assign(next);
        return;
      }
      await enter(data.user);
    } catch (e) {
      showError(error, e);
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    submit("login");
  });
  $("#signup-submit").addEventListener("click", () => submit("signup"));
  name.focus();
}
