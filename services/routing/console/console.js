// The staff console: staff and ombudsmen log in, work their office's queue and each case
// file, in Khmer or English. Served as written (no build step, no library); it speaks
// only to the API of the service that serves it, with the session token kept in this
// tab's sessionStorage, so closing the tab forgets it.
"use strict";

const LANGUAGE_KEY = "ourvoice.console.language";
const SESSION_KEY = "ourvoice.console.session";
const PAGE_SIZE = 20;
const DUE_SOON_HOURS = 24;
const STATUSES = ["routed", "acknowledged", "waiting-for-citizen", "escalated", "resolved",
  "closed", "withdrawn"];
const TYPES = ["complaint", "support", "information", "evaluation"];
// The order the action buttons come in, whatever order the case file lists them.
const ACTIONS = ["acknowledge", "request-info", "resolve", "note", "assign", "transfer",
  "escalate", "findings", "close"];

const state = {
  language: localStorage.getItem(LANGUAGE_KEY) === "en" ? "en" : "km",
  words: null,
  session: JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null"),
  templates: null,
  offices: {}, // the directory's offices met so far, by id
  pages: { key: "", cursors: [] }, // the cursors of the queue pages before this one
  draw: () => {}, // redraws the current view from what it last loaded
  login: {}, // what the login form must ask for next: totp, new_password
  notice: null,
  opened: null, // the action form open on the case page
  files: { caseId: null, urls: {} }, // blob: URLs of the open case's files, by API path
};

// -- words ----------------------------------------------------------------------------
function word(key, values = {}) {
  let found = key.split(".").reduce((part, name) => part?.[name], state.words[state.language]);
  if (typeof found !== "string") found = key.split(".").pop();
  return found.replace(/{(\w+)}/g, (_, name) => values[name] ?? "");
}

const named = (thing) => thing ? (state.language === "km" ? thing.name_km : thing.name_en) : "";
const inLanguage = (texts, language = state.language) => texts?.[language] ?? texts?.en ?? "";

// A moment as Cambodia's clocks show it, with the month named in the language shown
// (not every browser knows Khmer's month names).
const CLOCK = new Intl.DateTimeFormat("en-GB", { year: "numeric", month: "numeric",
  day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  timeZone: "Asia/Phnom_Penh" });

function when(at) {
  if (!at) return "";
  const part = Object.fromEntries(CLOCK.formatToParts(new Date(at))
    .map(({ type, value }) => [type, value]));
  const month = state.words[state.language].months[Number(part.month) - 1];
  return `${Number(part.day)} ${month} ${part.year} ${part.hour}:${part.minute}`;
}

// -- the page -------------------------------------------------------------------------
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  let value;
  for (const [name, given] of Object.entries(props)) {
    if (given === undefined || given === null || given === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), given);
    else if (name === "text") node.textContent = given;
    else if (name === "class") node.className = given;
    else if (name === "value") value = given;
    else node.setAttribute(name, given === true ? "" : given);
  }
  node.append(...children.flat(Infinity).filter((child) => child !== null && child !== undefined
    && child !== false));
  if (value !== undefined) node.value = value;
  return node;
}

const view = () => document.getElementById("view");

function show(name, ...content) {
  document.body.dataset.view = name;
  view().replaceChildren(...content.filter(Boolean));
  document.body.dataset.drawn = String(Number(document.body.dataset.drawn) + 1);
}

// A word for the person at the top of the page, until the next one; null clears it.
function notify(key, kind = "info", detail = "") {
  state.notice = key ? { key, kind, detail } : null;
  drawNotice();
}

function drawNotice() {
  const notice = document.getElementById("notice");
  notice.hidden = !state.notice;
  if (!state.notice) return;
  notice.dataset.kind = state.notice.kind;
  notice.dataset.key = state.notice.key;
  notice.replaceChildren(...[el("span", { text: word(state.notice.key) }),
    state.notice.detail ? el("small", { text: state.notice.detail }) : null,
    el("button", { type: "button", class: "quiet", "aria-label": "×", text: "×",
      onclick: () => notify(null) })].filter(Boolean));
}

function drawChrome() {
  document.documentElement.lang = state.language;
  for (const node of document.querySelectorAll("[data-text]")) {
    node.textContent = word(node.dataset.text);
  }
  for (const button of document.querySelectorAll("[data-language]")) {
    button.setAttribute("aria-pressed", String(button.dataset.language === state.language));
  }
  const account = state.session?.account;
  const who = document.getElementById("who");
  who.hidden = !account;
  document.getElementById("logout").hidden = !account;
  if (account) {
    who.textContent = `${account.name} · ${word(`roles.${account.role}`)}`;
  }
  document.title = word("title");
  drawNotice();
}

// -- the API --------------------------------------------------------------------------
class Refusal extends Error {
  constructor(status, errors) {
    super(`${status}`);
    this.status = status;
    this.errors = errors || {};
  }

  get reason() {
    return Object.values(this.errors).flat().join(" ");
  }
}

async function api(method, path, body, extra = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (state.session) headers.Authorization = `Bearer ${state.session.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Refusal(0, {});
  }
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.ok) return answer;
  if (response.status === 401 && state.session) {
    forget();
    notify("session_ended", "warning");
    go("#/login");
  }
  throw new Refusal(response.status, answer?.errors);
}

// A case's file, read with the session token (an <img src> or <a href> could not send
// it) and kept in this tab as a blob: URL until another case is opened.
async function fileUrl(path) {
  if (state.files.urls[path]) return state.files.urls[path];
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${state.session.token}` },
      cache: "no-store" });
  } catch {
    throw new Refusal(0, {});
  }
  if (!response.ok) {
    const answer = await response.json().catch(() => null);
    throw new Refusal(response.status, answer?.errors);
  }
  const url = URL.createObjectURL(await response.blob());
  state.files.urls[path] = url;
  return url;
}

function forgetFiles(caseId) {
  if (state.files.caseId === caseId) return;
  Object.values(state.files.urls).forEach((url) => URL.revokeObjectURL(url));
  state.files = { caseId, urls: {} };
}

// What a refusal means to the person who met it.
function complain(refusal) {
  if (!(refusal instanceof Refusal)) throw refusal;
  if (refusal.status === 401) return; // back at the login already
  const key = { 0: "unavailable", 400: "invalid", 403: "not_allowed", 404: "not_found",
    409: "conflict", 410: "file_erased" }[refusal.status] ?? "unavailable";
  notify(key, refusal.status === 409 ? "warning" : "error", refusal.reason);
}

function remember(session) {
  state.session = session;
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

function forget() {
  state.session = null;
  state.templates = null;
  sessionStorage.removeItem(SESSION_KEY);
  drawChrome();
}

async function logOut() {
  try {
    await api("DELETE", "/v1/sessions/current");
  } catch (refusal) {
    if (!(refusal instanceof Refusal)) throw refusal; // ended already: the same to us
  }
  forget();
  notify("logged_out");
  go("#/login");
}

// -- where we are: #/login, #/queue?filters, #/cases/<id> ------------------------------
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  if (!state.session) return logInView();
  if (parts[0] === "cases" && parts[1]) return caseView(decodeURIComponent(parts[1]));
  if (parts[0] === "queue") return queueView(new URLSearchParams(query));
  if (parts[0] === "desk") return deskView();
  return go("#/queue");
}

// -- log in ---------------------------------------------------------------------------
function logInView() {
  state.draw = logInView;
  const field = (name, type, autocomplete, extra = {}) => el("label", {},
    el("span", { text: word(name) }),
    el("input", { name, type, autocomplete, required: true, ...extra }));
  const form = el("form", { class: "card narrow", "data-form": "login", onsubmit: logIn },
    el("h2", { text: word("log_in_heading") }),
    field("username", "text", "username", { autocapitalize: "none", spellcheck: "false" }),
    field("password", "password", "current-password"),
    state.login.totp ? el("p", { class: "hint", text: word("totp_needed") }) : null,
    state.login.totp ? field("totp", "text", "one-time-code",
      { inputmode: "numeric", pattern: "[0-9]{6}", maxlength: "6" }) : null,
    state.login.new_password ? el("p", { class: "hint", text: word("change_needed") }) : null,
    state.login.new_password ? field("new_password", "password", "new-password") : null,
    el("p", { class: "problem", "data-part": "problem" }),
    el("button", { type: "submit", class: "primary", text: word("log_in") }));
  // What was typed survives a change of language.
  for (const [name, value] of Object.entries(state.login.typed || {})) {
    if (form.elements[name]) form.elements[name].value = value;
  }
  form.addEventListener("input", () => { state.login.typed = values(form); });
  show("login", form);
}

function values(form) {
  return Object.fromEntries([...new FormData(form)].map(([name, value]) => [name, value.trim()]));
}

async function logIn(submitted) {
  submitted.preventDefault();
  const form = submitted.target;
  const typed = values(form);
  const body = { username: typed.username, password: form.elements.password.value };
  if (typed.totp) body.totp = typed.totp;
  if (form.elements.new_password) body.new_password = form.elements.new_password.value;
  try {
    const session = await api("POST", "/v1/sessions", body);
    remember({ token: session.session_token, account: session.account,
      expires_at: session.expires_at });
    state.login = {};
    notify(null);
    drawChrome();
    go("#/queue");
  } catch (refusal) {
    if (!(refusal instanceof Refusal)) throw refusal;
    const asked = { totp: state.login.totp || "totp" in refusal.errors,
      new_password: state.login.new_password || "new_password" in refusal.errors };
    if (asked.totp !== state.login.totp || asked.new_password !== state.login.new_password) {
      state.login = { ...asked, typed };
      logInView();
      return;
    }
    const problem = view().querySelector("[data-part=problem]");
    problem.textContent = refusal.status === 401 && !refusal.errors.totp ? word("login_failed")
      : refusal.reason || word(refusal.status === 0 ? "unavailable" : "invalid");
  }
}

// -- the queue ------------------------------------------------------------------------
const FILTERS = ["status", "type", "category", "overdue", "due_soon", "mine"];

function queueQuery(params) {
  const query = new URLSearchParams({ limit: params.get("limit") || PAGE_SIZE });
  for (const name of ["status", "type", "category", "cursor"]) {
    if (params.get(name)) query.set(name, params.get(name));
  }
  if (params.get("overdue")) query.set("overdue", "true");
  if (params.get("due_soon")) query.set("due_within_hours", DUE_SOON_HOURS);
  if (params.get("mine")) query.set("assignee", "me");
  return query;
}

async function queueView(params) {
  const account = state.session.account;
  const office = account.office_id || params.get("office");
  const filterKey = [office, ...FILTERS.map((name) => params.get(name) || "")].join("|");
  if (state.pages.key !== filterKey) state.pages = { key: filterKey, cursors: [] };
  if (!office) {
    state.draw = () => drawQueue(params, null, null);
    return state.draw();
  }
  show("queue", el("p", { class: "loading", text: word("loading") }));
  let queue;
  try {
    [queue] = await Promise.all([
      api("GET", `/v1/offices/${encodeURIComponent(office)}/queue?${queueQuery(params)}`),
      officeName(office),
    ]);
  } catch (refusal) {
    complain(refusal);
    queue = { office_id: office, total: 0, counts: {}, cases: [], next_cursor: null };
  }
  state.draw = () => drawQueue(params, office, queue);
  state.draw();
}

function withParams(params, changes) {
  const next = new URLSearchParams(params);
  for (const [name, value] of Object.entries(changes)) {
    if (value) next.set(name, value); else next.delete(name);
  }
  return `#/queue?${next}`;
}

function drawQueue(params, office, queue) {
  const account = state.session.account;
  const refilter = (changes) => go(withParams(params, { ...changes, cursor: null }));
  const choice = (name, options) => el("label", {},
    el("span", { text: word(name) }),
    el("select", { name, value: params.get(name) || "",
      onchange: (changed) => refilter({ [name]: changed.target.value }) },
    el("option", { value: "", text: word("all") }),
    options.map(([value, text]) => el("option", { value, text }))));
  const toggle = (name) => el("label", { class: "check" },
    el("input", { type: "checkbox", name, checked: Boolean(params.get(name)),
      onchange: (changed) => refilter({ [name]: changed.target.checked ? "1" : null }) }),
    el("span", { text: word(`${name}_only`) }));
  const categories = Object.entries(state.words[state.language].categories)
    .sort((a, b) => a[1].localeCompare(b[1], state.language));
  const heading = office ? word(account.role === "ombudsman" ? "ombudsman_heading"
    : "queue_heading", { office: named(state.offices[office]) || office }) : word("choose_office");
  const filters = el("form", { class: "filters", "data-form": "filters",
    onsubmit: (submitted) => submitted.preventDefault() },
  choice("status", STATUSES.map((s) => [s, word(`statuses.${s}`)])),
  choice("type", TYPES.map((t) => [t, word(`types.${t}`)])),
  choice("category", categories),
  toggle("overdue"), toggle("due_soon"),
  account.office_id ? toggle("mine") : null);
  const parts = [el("h2", { text: heading }), findByCode()];
  if (account.office_id && office === account.office_id) {
    parts.push(el("p", { class: "desk-link" }, el("a", { href: "#/desk", class: "button",
      "data-part": "desk", text: word("desk.open") })));
  }
  if (!account.office_id) {
    parts.push(officePicker((picked) => go(withParams(params, { office: picked.id, cursor: null }))));
  }
  if (office && queue) {
    parts.push(filters, counts(queue, params, refilter), caseList(queue.cases),
      pager(params, queue));
  }
  show("queue", ...parts);
}

function counts(queue, params, refilter) {
  return el("p", { class: "counts", "data-part": "counts" },
    el("b", { "data-count": "total", text: word("total", { n: queue.total }) }),
    Object.entries(queue.counts || {}).map(([status, n]) => el("button", {
      type: "button", class: params.get("status") === status ? "chip on" : "chip",
      "data-count": status, onclick: () => refilter({ status }),
    }, `${word(`statuses.${status}`)} `, el("b", { text: String(n) }))));
}

function nearestDue(entry) {
  return [entry.acknowledge_due, entry.resolve_due].filter(Boolean).sort()[0] || null;
}

function caseList(cases) {
  if (!cases.length) return el("p", { class: "empty", text: word("no_cases") });
  const soon = Date.now() + DUE_SOON_HOURS * 3600 * 1000;
  return el("ol", { class: "cases", "data-part": "cases" }, cases.map((entry) => {
    const due = nearestDue(entry);
    const dueSoon = !entry.overdue && due && new Date(due).getTime() <= soon;
    const mark = entry.overdue ? "overdue" : dueSoon ? "due_soon" : null;
    return el("li", { class: mark ? `case ${mark}` : "case", "data-case": entry.case_id,
      "data-mark": mark || "" },
    el("a", { href: `#/cases/${entry.case_id}` },
      el("span", { class: "code", text: entry.tracking_code }),
      el("span", { class: `status ${entry.status}`, text: word(`statuses.${entry.status}`) }),
      mark ? el("span", { class: `mark ${mark}`, text: word(mark) }) : null,
      el("span", { class: "what", text: [word(`types.${entry.type}`),
        word(`categories.${entry.category}`)].join(" · ") }),
      entry.first_line ? el("span", { class: "line", text: entry.first_line }) : null,
      el("span", { class: "meta" },
        due ? el("span", { text: word("due", { at: when(due) }) }) : null,
        el("span", { text: entry.assignee || word("unassigned") }),
        entry.transfers ? el("span", { text: word("transfers_n", { n: entry.transfers }) })
          : null)));
  }));
}

function pager(params, queue) {
  const cursors = state.pages.cursors;
  const earlier = params.get("cursor") ? () => {
    const before = cursors.pop() || null;
    go(withParams(params, { cursor: before }));
  } : null;
  const later = queue.next_cursor ? () => {
    cursors.push(params.get("cursor") || "");
    go(withParams(params, { cursor: queue.next_cursor }));
  } : null;
  return el("nav", { class: "pager", "data-part": "pager" },
    el("button", { type: "button", "data-page": "previous", disabled: !earlier,
      onclick: earlier || undefined, text: word("previous") }),
    el("button", { type: "button", "data-page": "next", disabled: !later,
      onclick: later || undefined, text: word("next") }));
}

function findByCode() {
  return el("form", { class: "find", "data-form": "find", onsubmit: async (submitted) => {
    submitted.preventDefault();
    const code = submitted.target.elements.tracking_code.value.trim();
    if (!code) return;
    try {
      const found = await api("GET", `/v1/cases?${new URLSearchParams({ tracking_code: code })}`);
      go(`#/cases/${found.case_id}`);
    } catch (refusal) { complain(refusal); }
  } },
  el("label", {}, el("span", { text: word("tracking_code") }),
    el("input", { name: "tracking_code", autocapitalize: "characters", spellcheck: "false" })),
  el("button", { type: "submit", text: word("open") }));
}

// -- the office desk: a case recorded for a citizen who came in or called ------------
const GENDERS = ["undisclosed", "female", "male", "other"];
const CONSENT_WAYS = ["spoken", "signed form"];

// One key per form drawn: sending it twice (a double click, a retry after a network
// error) records one case.
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function deskView() {
  const office = state.session.account.office_id;
  if (!office) return go("#/queue");
  await officeName(office).catch(() => {});
  state.draw = () => drawDesk(office, newKey());
  state.draw();
}

function deskBody(form) {
  const typed = values(form);
  const anonymous = form.elements.anonymous.checked;
  const complainant = { anonymous, gender: typed.gender };
  if (!anonymous) {
    if (typed.name) complainant.name = typed.name;
    if (typed.phone) complainant.phone = typed.phone;
  }
  const body = { type: typed.type, category: typed.category, language: typed.language,
    location: { commune: typed.commune }, complainant,
    consent: { given: form.elements.consent.checked, how: typed.consent_how },
    about_this_office: form.elements.about_this_office.checked };
  if (typed.description) body.description = typed.description;
  if (typed.type === "evaluation" && typed.rating) body.rating = Number(typed.rating);
  return body;
}

function drawDesk(office, key) {
  const field = (name, control) => el("label", {}, el("span", { text: word(`desk.${name}`) }),
    control);
  const check = (name, extra = {}) => el("label", { class: "check" },
    el("input", { type: "checkbox", name, ...extra }),
    el("span", { text: word(`desk.${name}`) }));
  const select = (name, options, extra = {}) => el("select", { name, ...extra },
    options.map(([value, text]) => el("option", { value, text })));
  const categories = Object.entries(state.words[state.language].categories)
    .sort((a, b) => a[1].localeCompare(b[1], state.language));
  const commune = office.startsWith("commune-") ? office.slice("commune-".length) : "";
  const problem = el("p", { class: "problem", "data-part": "problem" });
  const form = el("form", { class: "card desk", "data-form": "desk", onsubmit: async (sent) => {
    sent.preventDefault();
    problem.textContent = "";
    try {
      const recorded = await api("POST", `/v1/offices/${encodeURIComponent(office)}/desk/cases`,
        deskBody(form), { "Idempotency-Key": key });
      notify("done", "success");
      drawRecorded(recorded);
    } catch (refusal) {
      if (!(refusal instanceof Refusal)) throw refusal;
      problem.textContent = refusal.reason || word(refusal.status === 0 ? "unavailable"
        : refusal.status === 403 ? "not_allowed" : "invalid");
    }
  } },
  el("h2", { text: word("desk.heading", { office: named(state.offices[office]) || office }) }),
  el("p", { class: "hint", text: word("desk.hint") }),
  el("label", {}, el("span", { text: word("type") }),
    select("type", TYPES.map((t) => [t, word(`types.${t}`)]))),
  el("label", {}, el("span", { text: word("category") }), select("category", categories)),
  field("commune", el("input", { name: "commune", required: true, pattern: "[0-9]{6}",
    inputmode: "numeric", maxlength: "6", value: commune })),
  field("description", el("textarea", { name: "description", rows: 5, maxlength: 4000 })),
  field("rating", el("input", { name: "rating", type: "number", min: "1", max: "5" })),
  field("language", select("language", ["km", "en"].map((l) => [l, word(`languages.${l}`)]))),
  check("anonymous", { checked: true, onchange: (changed) => {
    for (const name of ["name", "phone"]) form.elements[name].disabled = changed.target.checked;
  } }),
  field("name", el("input", { name: "name", maxlength: "200", disabled: true })),
  field("phone", el("input", { name: "phone", type: "tel", maxlength: "30", disabled: true })),
  field("gender", select("gender", GENDERS.map((g) => [g, word(`desk.genders.${g}`)]))),
  check("consent", { required: true }),
  field("consent_how", select("consent_how",
    CONSENT_WAYS.map((w) => [w, word(`desk.consent_ways.${w}`)]))),
  check("about_this_office"),
  problem,
  el("button", { type: "submit", class: "primary", text: word("desk.record") }));
  show("desk", backLink(), form);
}

function drawRecorded(recorded) {
  state.draw = () => drawRecorded(recorded);
  show("desk", backLink(), el("section", { class: "card desk", "data-part": "recorded" },
    el("p", { text: word("desk.recorded") }),
    el("dl", {},
      el("dt", { text: word("tracking_code") }),
      el("dd", { class: "code", "data-part": "tracking-code", text: recorded.tracking_code }),
      el("dt", { text: word("desk.token") }),
      el("dd", { class: "token", "data-part": "citizen-token", text: recorded.citizen_token })),
    el("p", {}, el("a", { href: `#/cases/${recorded.case_id}`, text: word("open") }), " · ",
      el("a", { href: "#/desk", onclick: (clicked) => { clicked.preventDefault(); deskView(); },
        text: word("desk.another") }))));
}

// An office's name, from the directory's few offices of its kind and area (its id says
// both: commune-120101 is the commune office of 120101, in district 1201 of province 12).
async function officeName(officeId) {
  if (state.offices[officeId]) return;
  const [, kind, area = ""] = officeId.match(/^(.*?)(?:-(\d+))?$/);
  const where = { kind };
  if (area.length >= 2) where.province = area.slice(0, 2);
  if (area.length >= 4) where.district = area.slice(0, 4);
  try {
    const found = await api("GET", `/v1/offices?${new URLSearchParams(where)}`);
    const office = found.find((candidate) => candidate.id === officeId);
    if (office) state.offices[officeId] = office;
  } catch (refusal) {
    if (!(refusal instanceof Refusal)) throw refusal; // the id will do
  }
}

// An office searched for by part of its Khmer or English name.
function officePicker(picked, label = "office_search") {
  let shown = [];
  let asked = 0;
  const results = el("ul", { class: "offices", "data-part": "offices" });
  const search = async (typed) => {
    const q = typed.target.value.trim();
    const mine = ++asked;
    if (q.length < 2) { results.replaceChildren(); return; }
    let found = [];
    try {
      found = await api("GET", `/v1/offices?${new URLSearchParams({ q })}`);
    } catch (refusal) { complain(refusal); }
    if (mine !== asked) return; // a later search has been asked for
    shown = found.slice(0, 8);
    results.replaceChildren(...(shown.length ? shown.map((office) => el("li", {},
      el("button", { type: "button", class: "office", "data-office": office.id,
        onclick: () => {
          for (const other of results.querySelectorAll("button")) other.classList.remove("on");
          results.querySelector(`[data-office="${office.id}"]`).classList.add("on");
          picked(office);
        } },
      el("span", { lang: "km", text: office.name_km }),
      el("small", { lang: "en", text: office.name_en })))) : [
      el("li", { class: "empty", text: word("no_offices") })]));
  };
  return el("div", { class: "picker" },
    el("label", {}, el("span", { text: word(label) }),
      el("input", { type: "search", name: "office_q", autocomplete: "off", oninput: search })),
    results);
}

// -- a case ---------------------------------------------------------------------------
async function caseView(caseId, { keepNotice = false } = {}) {
  if (!keepNotice) notify(null);
  show("case-loading", el("p", { class: "loading", text: word("loading") }));
  let file;
  try {
    file = await api("GET", `/v1/cases/${encodeURIComponent(caseId)}`);
  } catch (refusal) {
    complain(refusal);
    state.draw = () => show("case", backLink());
    return state.draw();
  }
  if (file.office?.id) state.offices[file.office.id] = file.office;
  forgetFiles(file.case_id);
  state.draw = () => drawCase(file);
  state.draw();
}

function backLink() {
  return el("p", { class: "back" }, el("a", { href: "#/queue", text: `← ${word("back")}` }));
}

function byAt(a, b) {
  return String(a.at).localeCompare(String(b.at));
}

function said(who, text, at, by, kind) {
  return el("li", { class: `said ${kind}` },
    el("p", { class: "who" }, el("b", { text: who }), " ",
      el("time", { datetime: at, text: when(at) }),
      by ? el("span", { text: ` · ${word("by", { name: by })}` }) : null),
    el("p", { class: "text", text }));
}

function section(name, title, ...content) {
  const filled = content.flat().filter(Boolean);
  return el("section", { class: "part", "data-part": name },
    el("h3", { text: title }),
    filled.length ? filled : el("p", { class: "empty", text: word("none_yet") }));
}

function drawCase(file) {
  const place = ["commune", "district", "province"].map((level) => named(file.place?.[level]))
    .filter(Boolean).join(", ");
  const facts = [
    ["status", el("span", { class: `status ${file.status}`, "data-status": file.status,
      text: word(`statuses.${file.status}`) })],
    ["type", word(`types.${file.type}`)],
    ["category", inLanguage(file.category_label) || word(`categories.${file.category}`)],
    ["office", named(file.office) || file.office?.id],
    ["place", place],
    ["submitted", when(file.submitted_at)],
    ["channel", word(`channels.${file.channel}`)],
    ["language", word(`languages.${file.language}`)],
    ["assignee", file.assignee || word("unassigned")],
  ];
  const conversation = [
    ...file.questions.map((q) => ({ ...q, kind: "question" })),
    ...file.messages.map((m) => ({ ...m, kind: "message" })),
  ].sort(byAt);
  const header = el("header", { class: "case-head" },
    el("h2", {}, el("span", { class: "code", "data-part": "tracking-code",
      text: file.tracking_code }),
    file.sensitive ? el("span", { class: "mark sensitive", text: word("sensitive") }) : null),
    el("dl", { class: "facts" }, facts.filter(([, value]) => value).map(([name, value]) => [
      el("dt", { text: word(name) }), el("dd", { "data-fact": name }, value)])));
  const deadlines = section("deadlines", word("deadlines"), file.deadlines.map((d) => el("p", {
    class: `deadline ${d.state}`, "data-deadline": d.name },
  el("b", { text: word(`deadline_names.${d.name}`) }), " ",
  d.due_at ? el("time", { datetime: d.due_at, text: `${when(d.due_at)} · ` }) : null,
  el("span", { text: word(`deadline_states.${d.state}`) }))));
  const words = section("description", word("citizen_words"), file.words_hidden
    ? el("p", { class: "hint", text: word("words_hidden") })
    : el("blockquote", { class: "text", lang: file.language, text: file.description }));
  const parts = [
    backLink(), header, actionsPanel(file), words,
    section("conversation", word("conversation"), conversation.length ? el("ol", { class: "thread" },
      conversation.map((entry) => entry.kind === "question"
        ? said(word("office_asked"), entry.text, entry.at, entry.by, "question")
        : said(word("citizen_wrote"), entry.text, entry.at, null,
          entry.answers_request ? "message answer" : "message"))) : null),
    deadlines,
    file.resolution ? section("resolution", word("resolution"), el("ol", { class: "thread" },
      said(word("resolution"), file.resolution.text, file.resolution.at, file.resolution.by,
        "resolution"))) : null,
    file.feedback.length ? section("feedback", word("feedback"), el("ol", { class: "thread" },
      file.feedback.map((f) => said(
        [word(f.satisfied ? "satisfied" : "unsatisfied"),
          f.rating ? word("rating", { n: f.rating }) : ""].filter(Boolean).join(" · "),
        f.comment || "", f.at, null, f.satisfied ? "feedback" : "feedback unsatisfied")))) : null,
    file.escalations.length ? section("escalations", word("escalations"), file.escalations.map(
      (e) => el("p", {}, el("b", { text: word(`reasons.${e.reason}`) }), " ",
        el("span", { text: word("from_to", { from: e.from_office_id, to: e.office_id }) }), " ",
        el("time", { datetime: e.at, text: when(e.at) })))) : null,
    file.findings ? section("findings", word("findings"), el("ol", { class: "thread" },
      said(word("findings"), file.findings.findings, file.findings.at, file.findings.by,
        "findings"),
      said(word("recommendation"), file.findings.recommendation, file.findings.at, null,
        "findings"))) : null,
    attachmentsPart(file),
    section("notes", word("notes"), file.notes.length ? el("ol", { class: "thread" },
      file.notes.map((n) => said("", n.text, n.at, n.by, "note"))) : null),
    file.transfers.length ? section("transfers", word("transfers"), file.transfers.map(
      (t) => el("p", {}, el("b", { text: word("from_to", { from: t.from_office_id,
        to: t.office_id }) }), " ", el("span", { text: t.reason }), " ",
      el("span", { text: `· ${word("by", { name: t.by })} · ${when(t.at)}` })))) : null,
    el("details", { class: "part", "data-part": "timeline" },
      el("summary", { text: word("timeline") }),
      el("ol", { class: "timeline" }, file.timeline.map((t) => el("li", {},
        el("time", { datetime: t.at, text: when(t.at) }), " ",
        el("b", { text: state.words[state.language].events[t.event_type] ? word(
          `events.${t.event_type}`) : t.summary || t.event_type }),
        t.by ? el("span", { text: ` · ${word("by", { name: t.by })}` }) : null)))),
  ];
  show("case", ...parts);
  document.body.dataset.caseVersion = String(file.version);
}

// -- a case's files ---------------------------------------------------------------------
function size(bytes) {
  if (bytes < 1024 * 1024) return word("size_kb", { n: Math.max(1, Math.round(bytes / 1024)) });
  return word("size_mb", { n: (bytes / (1024 * 1024)).toFixed(1) });
}

// Who may open a file: an auditor reads the files' facts only, and a sensitive case's
// files are the ombudsman's alone; null for whoever may. The API refuses the same.
function closedTo(file) {
  const role = state.session?.account?.role;
  if (role === "auditor") return "facts_only";
  if (file.sensitive && role !== "ombudsman") return "only_ombudsman";
  return null;
}

function attachmentsPart(file) {
  const attachments = file.attachments || [];
  if (!attachments.length) return null;
  const closed = closedTo(file);
  return section("attachments", word("attachments"), el("ul", { class: "files" },
    attachments.map((a) => el("li", { class: `file ${a.kind}`, "data-attachment": a.attachment_id,
      "data-kind": a.kind },
    el("p", { class: "who" }, el("b", { text: word(`kinds.${a.kind}`) }), " ",
      el("span", { text: `${size(a.size)} · ${word(`added_by.${a.added_by}`)} · ` }),
      el("time", { datetime: a.at, text: when(a.at) })),
    a.erased ? el("p", { class: "hint", text: word("file_erased") })
      : closed ? el("p", { class: "hint", "data-closed": closed, text: word(closed) })
        : opener(a),
    el("p", { class: "removed" }, a.removed.length
      ? `${word("removed")} ${a.removed.join("; ")}` : word("nothing_removed"))))));
}

// A photo's preview is fetched at once; a voice note or a document only when asked for,
// since opening the file itself is recorded as a reading of the case file.
function opener(a) {
  const box = el("div", { class: "open" });
  const failed = (refusal) => {
    complain(refusal);
    box.replaceChildren(el("p", { class: "problem", text: word("file_unavailable") }));
  };
  if (a.kind === "photo" && a.thumbnail_url) {
    const image = el("img", { class: "thumb", alt: word("kinds.photo") });
    fileUrl(a.thumbnail_url).then((url) => { image.src = url; }, failed);
    box.append(image);
  }
  if (a.kind === "voice") {
    const player = el("audio", { controls: true, preload: "none" });
    const listen = el("button", { type: "button", text: word("listen"), onclick: async () => {
      listen.disabled = true;
      try {
        player.src = await fileUrl(a.url);
        listen.hidden = true;
        await player.play().catch(() => {}); // a browser may refuse to start it by itself
      } catch (refusal) {
        failed(refusal);
      }
    } });
    box.append(player, listen);
  } else {
    const name = `${a.attachment_id}.${extension(a.media_type)}`;
    const save = el("button", { type: "button", text: word("download"), onclick: async () => {
      try {
        const link = el("a", { href: await fileUrl(a.url), download: name, hidden: true });
        document.body.append(link);
        link.click();
        link.remove();
      } catch (refusal) {
        failed(refusal);
      }
    } });
    box.append(save);
  }
  return box;
}

const EXTENSIONS = { "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp",
  "image/heic": "heic", "application/pdf": "pdf" };
const extension = (type) => EXTENSIONS[type] || "bin";

// -- acting on a case -----------------------------------------------------------------
function actionsPanel(file) {
  const can = ACTIONS.filter((name) => (file.can || []).includes(name));
  if (!can.length) return null;
  const open = state.opened?.caseId === file.case_id ? state.opened.name : null;
  return el("section", { class: "part actions", "data-part": "actions" },
    el("h3", { text: word("actions") }),
    el("div", { class: "buttons" }, can.map((name) => el("button", {
      type: "button", "data-act": name, class: name === open ? "on" : "",
      "aria-expanded": String(name === open),
      onclick: () => {
        if (name === "acknowledge") return act(file, "acknowledge", {});
        state.opened = name === open ? null : { caseId: file.case_id, name };
        return state.draw();
      },
      text: word(`act.${name}`) }))),
    open ? actionForm(file, open) : null);
}

async function act(file, name, body) {
  const path = { note: "notes" }[name] || name;
  try {
    await api("POST", `/v1/cases/${file.case_id}/${path}`, body);
    notify("done", "success");
    if (name === "transfer" || name === "escalate") {
      // The case is the other office's now: this one's staff may not read it any more.
      state.opened = null;
      go("#/queue");
      return;
    }
  } catch (refusal) {
    complain(refusal);
    // Only a 409 means the case is not what this page shows: anything else changed nothing.
    if (refusal.status !== 409) return;
  }
  state.opened = null;
  await caseView(file.case_id, { keepNotice: true });
}

function textField(name, label, extra = {}) {
  return el("label", {}, el("span", { text: label }),
    el("textarea", { name, rows: 4, required: true, maxlength: 4000, ...extra }));
}

async function replyTemplates() {
  if (!state.templates) state.templates = await api("GET", "/v1/reply-templates");
  return state.templates;
}

// A template's text, in the case's language, or words of one's own: the text shown is
// what the citizen gets; a template left as it is goes as the template.
function templateField(file, kind, field, templates) {
  const mine = templates.filter((t) => t.kind === kind);
  const text = textField(field, word("text_for_citizen",
    { language: word(`languages.${file.language}`) }), { lang: file.language });
  const textarea = text.querySelector("textarea");
  const select = el("select", { name: "template", onchange: () => {
    const chosen = mine.find((t) => t.id === select.value);
    textarea.value = chosen ? inLanguage(chosen.text, file.language) : "";
  } }, el("option", { value: "", text: word("own_words") }),
  mine.map((t) => el("option", { value: t.id, text: inLanguage(t.title) })));
  const body = () => {
    const chosen = mine.find((t) => t.id === select.value);
    if (chosen && textarea.value.trim() === inLanguage(chosen.text, file.language).trim()) {
      return { template: chosen.id };
    }
    return { [field]: textarea.value.trim() };
  };
  return { nodes: [el("label", {}, el("span", { text: word("template") }), select), text], body };
}

function actionForm(file, name) {
  const form = el("form", { class: "act", "data-form": name });
  const submit = el("button", { type: "submit", class: "primary", text: word(
    name === "close" ? "act.close" : "send") });
  let body = () => values(form);
  const fill = async () => {
    if (name === "request-info" || name === "resolve") {
      const field = name === "resolve" ? "resolution" : "question";
      const kind = name === "resolve" ? "resolution" : "question";
      const chooser = templateField(file, kind, field, await replyTemplates());
      body = chooser.body;
      return chooser.nodes;
    }
    if (name === "note") return [textField("text", word("note_text"))];
    if (name === "assign") {
      const staff = await api("GET", `/v1/offices/${encodeURIComponent(file.office.id)}/staff`);
      const me = state.session.account;
      body = () => ({ staff_id: form.elements.staff_id.value });
      return [el("label", {}, el("span", { text: word("assign_to") }),
        el("select", { name: "staff_id", required: true, value: file.assignee || me.username },
          el("option", { value: me.username, text: word("me", { name: me.name }) }),
          staff.filter((s) => s.username !== me.username).map((s) => el("option", {
            value: s.username, text: `${s.name} (${s.username}) · ${word(`roles.${s.role}`)}` }))))];
    }
    if (name === "transfer") {
      let chosen = null;
      body = () => (chosen ? { office_id: chosen.id, reason: form.elements.reason.value.trim() }
        : null);
      return [officePicker((office) => { chosen = office; }),
        textField("reason", word("reason"), { rows: 2 })];
    }
    if (name === "escalate") return [textField("reason", word("reason"), { rows: 2 })];
    if (name === "findings") {
      return [textField("findings", word("findings")),
        textField("recommendation", word("recommendation"))];
    }
    if (name === "close") {
      body = () => ({});
      return [el("p", { class: "hint", text: word("confirm_close") })];
    }
    return [];
  };
  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    const sent = body();
    if (sent === null) {
      form.querySelector("[data-part=problem]").textContent = word("pick_office");
      return;
    }
    submit.disabled = true;
    await act(file, name, sent);
    submit.disabled = false;
  });
  form.append(el("p", { class: "loading", text: word("loading") }));
  fill().then((nodes) => {
    form.replaceChildren(...nodes, el("p", { class: "problem", "data-part": "problem" }), submit);
    form.dataset.ready = "1";
  }, (refusal) => {
    form.replaceChildren();
    complain(refusal);
  });
  return form;
}

// -- starting -------------------------------------------------------------------------
async function start() {
  const response = await fetch("words.json");
  state.words = await response.json();
  for (const button of document.querySelectorAll("[data-language]")) {
    button.addEventListener("click", () => {
      state.language = button.dataset.language;
      localStorage.setItem(LANGUAGE_KEY, state.language);
      drawChrome();
      state.draw();
    });
  }
  document.getElementById("logout").addEventListener("click", logOut);
  window.addEventListener("hashchange", route);
  drawChrome();
  route();
}

start();
