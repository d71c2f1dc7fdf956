// The dashboard: the public summary (/v1/reports/summary) drawn as bar charts in inline
// SVG and each office's and district's scorecard (/v1/reports/offices) as a table that
// sorts, in Khmer or English, for one ended calendar month (the public figures are by
// month only) and a province or a district. Written to be served as it is: no build
// step, no library.
"use strict";

const WORDS = {
  km: {
    title: "សំឡេងយើង — របាយការណ៍ពាក្យបណ្តឹង", province: "ខេត្ត/រាជធានី",
    district: "ស្រុក/ខណ្ឌ", from: "ចាប់ពីថ្ងៃ", to: "ដល់ថ្ងៃ (មិនរាប់បញ្ចូល)", period: "រយៈពេល",
    all: "ទាំងអស់", month: "ខែ", week: "សប្តាហ៍", day: "ថ្ងៃ", year: "ឆ្នាំ",
    by_period: "ករណីតាមរយៈពេល", by_type: "ករណីតាមប្រភេទ", gender: "ករណីតាមភេទ",
    by_channel: "ករណីតាមមធ្យោបាយដាក់ពាក្យ", app: "កម្មវិធីទូរស័ព្ទ", open311: "Open311",
    sms: "សារ SMS", telegram: "តេឡេក្រាម", "office-desk": "នៅការិយាល័យ",
    by_area: "ករណីតាមខេត្ត/រាជធានី", by_area_district: "ករណីតាមស្រុក/ខណ្ឌ",
    by_category: "ករណីតាមសេវា", escalations: "ការបញ្ជូនទៅអង្គភាពទទួលបណ្តឹង",
    total: "ករណីសរុប", acknowledged: "បានទទួលស្គាល់ទាន់ពេល",
    resolved: "បានដោះស្រាយទាន់ពេល", median: "ពេលមធ្យមរហូតទទួលស្គាល់",
    satisfied: "ពលរដ្ឋពេញចិត្ត", hours: "ម៉ោង", none: "មិនទាន់មានទិន្នន័យ",
    hidden: "មិនបង្ហាញ",
    suppression: "ចំនួនតិចជាងប្រាំករណី មិនត្រូវបានបង្ហាញទេ ហើយចំនួនផ្សេងទៀតដែលអាចឱ្យគេគណនាវាបាន ក៏មិនបង្ហាញដែរ ដើម្បីកុំឱ្យអ្នកណាម្នាក់អាចត្រូវបានស្គាល់អត្តសញ្ញាណ។ តួលេខគឺសម្រាប់ខែពេញមួយ ក្រោយខែនោះបញ្ចប់។",
    problem: "មិនអាចទាញយករបាយការណ៍បានទេ",
    complaint: "ពាក្យបណ្តឹង", support: "សំណើជំនួយ", information: "សំណើព័ត៌មាន",
    evaluation: "ការវាយតម្លៃសេវា", female: "ស្រី", male: "ប្រុស", other: "ផ្សេងៗ",
    undisclosed: "មិនបញ្ជាក់", breach: "ហួសពេលកំណត់", appeal: "ពលរដ្ឋប្តឹងឧទ្ធរណ៍",
    transfers: "ផ្ទេរច្រើនដង", "ombudsman-breach": "អង្គភាពទទួលបណ្តឹងហួសពេល",
    scorecards: "ការិយាល័យ៖ ការគោរពពេលកំណត់ ពេលវេលា និងការពេញចិត្ត",
    offices: "ការិយាល័យ", districts: "ស្រុក/ខណ្ឌ", office: "ការិយាល័យ", place: "ស្រុក/ខណ្ឌ",
    on_time: "ទាន់ពេល (ទាំងអស់)", median_acknowledge: "ពេលមធ្យមរហូតទទួលស្គាល់",
    median_resolve: "ពេលមធ្យមរហូតដោះស្រាយ", days: "ថ្ងៃ", minutes: "នាទី", minute: "នាទី",
    sort_hint: "ចុចលើក្បាលជួរឈរ ដើម្បីតម្រៀប",
  },
  en: {
    title: "Our Voice — complaints report", province: "Province", district: "District",
    from: "From", to: "Until (not included)", period: "Period", all: "All",
    month: "Month", week: "Week", day: "Day", year: "Year",
    by_period: "Cases by period", by_type: "Cases by type", gender: "Cases by gender",
    by_channel: "Cases by way in", app: "App", open311: "Open311", sms: "SMS",
    telegram: "Telegram", "office-desk": "At an office desk",
    by_area: "Cases by province", by_area_district: "Cases by district",
    by_category: "Cases by service", escalations: "Escalations to the ombudsman",
    total: "Cases", acknowledged: "Acknowledged on time", resolved: "Resolved on time",
    median: "Median time to acknowledge", satisfied: "Citizens satisfied", hours: "hours",
    none: "No data yet", hidden: "held back",
    suppression: "Counts of fewer than five cases are held back, and so are others from which one could be worked out, so that no one can be identified. Figures are for whole calendar months, once the month has ended.",
    problem: "The report could not be loaded",
    complaint: "Complaint", support: "Support request", information: "Information request",
    evaluation: "Service evaluation", female: "Female", male: "Male", other: "Other",
    undisclosed: "Not disclosed", breach: "Deadline missed", appeal: "Citizen appealed",
    transfers: "Transferred too often", "ombudsman-breach": "Ombudsman deadline missed",
    scorecards: "Offices: deadlines met, times and satisfaction",
    offices: "Offices", districts: "Districts", office: "Office", place: "District",
    on_time: "On time (all deadlines)", median_acknowledge: "Median time to acknowledge",
    median_resolve: "Median time to resolve", days: "days", minutes: "minutes", minute: "minute",
    sort_hint: "Click a column's heading to sort by it",
  },
};

const state = { language: "km", labels: { provinces: [], categories: [] }, report: null,
                scorecards: null, scope: "offices", sort: { column: "on_time_share", up: true } };

const word = (key) => WORDS[state.language][key] ?? key;
const nameOf = (thing) => thing ? (state.language === "km" ? thing.name_km : thing.name_en) : null;

function placeName(code) {
  for (const province of state.labels.provinces) {
    if (province.code === code) return nameOf(province);
    const district = province.districts.find((d) => d.code === code);
    if (district) return nameOf(district);
  }
  return code;
}

function categoryName(code) {
  return nameOf(state.labels.categories.find((c) => c.code === code)) ?? code;
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

// One horizontal bar per entry; a hidden (null) value gets no bar, only its words.
function barChart(holder, entries, label = (key) => word(key)) {
  holder.replaceChildren();
  if (!entries.length) {
    holder.append(Object.assign(document.createElement("p"),
      { className: "empty", textContent: word("none") }));
    return;
  }
  // Drawn at the width it has, so its words keep their size on a telephone's screen.
  const width = Math.max(260, Math.min(640, holder.clientWidth || 520));
  const row = 26, labelWidth = Math.round(Math.min(190, width * 0.4)), valueWidth = 80;
  const largest = Math.max(1, ...entries.map(([, v]) => v ?? 0));
  const chart = svg("svg", { width, viewBox: `0 0 ${width} ${entries.length * row + 4}`,
                             role: "img" });
  entries.forEach(([key, value], index) => {
    const y = index * row + 2;
    const bar = svg("g", { "data-key": key, "data-value": value === null ? "hidden" : value });
    const name = svg("text", { x: labelWidth - 8, y: y + 16, "text-anchor": "end",
                               "data-label": "" });
    name.append(svg("title", {}, label(key)));  // the whole name, on hover
    name.append(svg("tspan", {}, label(key)));
    bar.append(name);
    const length = !value ? 0 : Math.max(2, (width - labelWidth - valueWidth) * value / largest);
    bar.append(svg("rect", { x: labelWidth, y: y + 3, width: length, height: row - 8, rx: 3,
                             fill: "var(--bar)" }));
    bar.append(svg("text", { x: labelWidth + length + 6, y: y + 16 },
                   value === null ? word("hidden") : value.toLocaleString()));
    chart.append(bar);
  });
  holder.append(chart);
  for (const name of chart.querySelectorAll("text[data-label]")) fitLabel(name, labelWidth - 12);
}

const graphemes = (text) => typeof Intl.Segmenter === "function"
  ? [...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(text)].map((g) => g.segment)
  : [...text];

// A name too long for the space beside its bar is cut at its end (never in the middle of
// a Khmer letter and its marks), its whole text in the title shown on hover.
function fitLabel(element, room) {
  const text = element.querySelector("tspan");
  if (text.getComputedTextLength() <= room) return;
  const letters = graphemes(text.textContent);
  let kept = letters.length;
  while (kept > 1) {
    kept -= 1;
    text.textContent = letters.slice(0, kept).join("").trimEnd() + "…";
    if (text.getComputedTextLength() <= room) break;
  }
  element.dataset.cut = "true";
}

function percent(share) {
  return share === null || share === undefined ? "–" : `${Math.round(share * 100)}%`;
}

function figures(report) {
  const ack = report.deadlines, median = report.time_to_acknowledge.median_seconds;
  const shown = [
    ["total", report.total === null ? word("hidden") : report.total.toLocaleString()],
    ["acknowledged", percent(ack.acknowledged_on_time_share)],
    ["resolved", percent(ack.resolved_on_time_share)],
    ["median", duration(median) ?? "–"],
    ["satisfied", percent(report.satisfaction.satisfied_share)],
  ];
  const holder = document.getElementById("figures");
  holder.replaceChildren(...shown.map(([key, value]) => {
    const box = Object.assign(document.createElement("div"), { className: "figure" });
    box.dataset.figure = key;
    box.append(Object.assign(document.createElement("b"), { textContent: value }),
               Object.assign(document.createElement("span"), { textContent: word(key) }));
    return box;
  }));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return null;
  if (seconds < 3600) {
    const minutes = Math.max(1, Math.round(seconds / 60));
    return `${minutes} ${word(minutes === 1 ? "minute" : "minutes")}`;
  }
  if (seconds < 3 * 86400) return `${(seconds / 3600).toFixed(1)} ${word("hours")}`;
  return `${(seconds / 86400).toFixed(1)} ${word("days")}`;
}

// Columns of the scorecard: what a ministry official compares across offices.
const COLUMNS = [
  ["cases", (v) => v.toLocaleString()],
  ["on_time_share", percent], ["acknowledged_on_time_share", percent],
  ["resolved_on_time_share", percent],
  ["median_acknowledge_seconds", duration], ["median_resolve_seconds", duration],
  ["satisfied_share", percent],
];
const HEADINGS = { cases: "total", on_time_share: "on_time",
                   acknowledged_on_time_share: "acknowledged", resolved_on_time_share: "resolved",
                   median_acknowledge_seconds: "median_acknowledge",
                   median_resolve_seconds: "median_resolve", satisfied_share: "satisfied" };

function element(tag, properties = {}, ...children) {
  const made = Object.assign(document.createElement(tag), properties);
  made.append(...children);
  return made;
}

// A hidden figure (null where its count is there to be hidden) reads "held back"; one
// with nothing to be computed from, a dash. Hidden and empty sort last either way.
function scorecardTable() {
  const holder = document.getElementById("scorecards");
  const found = state.scorecards;
  holder.replaceChildren();
  if (!found) return;
  const rows = [...found[state.scope]];
  const { column, up } = state.sort;
  const value = (row) => column === "name" ? nameOf(row) : row[column];
  rows.sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    if (x === null || x === undefined) return y === null || y === undefined ? 0 : 1;
    if (y === null || y === undefined) return -1;
    const order = typeof x === "string" ? x.localeCompare(y, state.language) : x - y;
    return up ? order : -order;
  });
  if (!rows.length) {
    holder.append(element("p", { className: "empty", textContent: word("none") }));
    return;
  }
  const heading = (key, text) => {
    const sorted = column === key ? (up ? "ascending" : "descending") : "none";
    const button = element("button", { type: "button", textContent: text });
    button.dataset.sort = key;
    button.addEventListener("click", () => {
      state.sort = { column: key, up: column === key ? !up : key === "name" };
      scorecardTable();
    });
    const cell = element("th", { scope: "col" }, button);
    cell.setAttribute("aria-sort", sorted);
    return cell;
  };
  const head = element("tr", {}, heading("name", word(state.scope === "offices" ? "office" : "place")),
                       ...COLUMNS.map(([key]) => heading(key, word(HEADINGS[key]))));
  const body = rows.map((row) => {
    const other = state.language === "km" ? row.name_en : row.name_km;
    const name = element("th", { scope: "row" },
                         element("span", { className: "name", textContent: nameOf(row) }),
                         element("span", { className: "other", textContent: other,
                                           lang: state.language === "km" ? "en" : "km" }));
    const tr = element("tr", {}, name, ...COLUMNS.map(([key, shown]) => {
      const figure = row[key];
      const text = figure === null ? (key === "cases" || row.cases === null ? word("hidden") : "–")
        : shown(figure);
      const cell = element("td", { textContent: text });
      cell.dataset.label = word(HEADINGS[key]);
      cell.dataset.column = key;
      cell.dataset.value = figure === null ? "hidden" : String(figure);
      return cell;
    }));
    tr.dataset.key = row.office_id || row.district;
    return tr;
  });
  holder.append(element("table", { className: "scorecards" }, element("thead", {}, head),
                        element("tbody", {}, ...body)),
                element("p", { className: "empty", textContent: word("sort_hint") }));
  for (const button of document.querySelectorAll("[data-scope]")) {
    button.setAttribute("aria-pressed", String(button.dataset.scope === state.scope));
  }
}

function draw() {
  document.documentElement.lang = state.language;
  for (const element of document.querySelectorAll("[data-text]")) {
    element.textContent = word(element.dataset.text);
  }
  fillPlaces();
  const report = state.report;
  if (!report) return;
  const chart = (name) => document.querySelector(`[data-chart="${name}"]`);
  const sorted = (counts) => Object.entries(counts);
  const inPlace = report.filters.province || report.filters.district;
  const byArea = inPlace ? report.by_district : report.by_province;
  document.querySelector('[data-text="by_area"]').textContent =
    word(inPlace ? "by_area_district" : "by_area");
  figures(report);
  barChart(chart("by_period"), sorted(report.by_period), (key) => key);
  barChart(chart("by_type"), sorted(report.by_type));
  barChart(chart("gender"), report.gender ? sorted(report.gender.totals) : []);
  barChart(chart("by_channel"), sorted(report.by_channel || {}));
  barChart(chart("by_area"), sorted(byArea), placeName);
  barChart(chart("by_category"), sorted(report.by_category), categoryName);
  barChart(chart("escalations"), sorted(report.escalations.by_reason));
  scorecardTable();
}

function option(value, text) {
  return Object.assign(document.createElement("option"), { value, textContent: text });
}

function fillPlaces() {
  const form = document.getElementById("filters");
  const chosen = { province: form.province.value, district: form.district.value };
  form.province.replaceChildren(option("", word("all")),
    ...state.labels.provinces.map((p) => option(p.code, nameOf(p))));
  form.province.value = chosen.province;
  const province = state.labels.provinces.find((p) => p.code === chosen.province);
  form.district.replaceChildren(option("", word("all")),
    ...(province ? province.districts : []).map((d) => option(d.code, nameOf(d))));
  form.district.value = province && province.districts.some((d) => d.code === chosen.district)
    ? chosen.district : "";
  form.district.disabled = !province;
}

// The public figures are for one whole calendar month and one place: a district, or
// else a province, or the whole country.
function query() {
  const form = document.getElementById("filters");
  const asked = new URLSearchParams();
  const place = !form.district.disabled && form.district.value ? "district" : "province";
  if (form[place].value) asked.set(place, form[place].value);
  if (form.month.value) asked.set("month", form.month.value);
  return asked;
}

function summaryQuery(asked) {
  const sent = new URLSearchParams(asked);
  const month = sent.get("month");
  sent.delete("month");
  if (month) {
    const [year, number] = month.split("-").map(Number);
    const next = number === 12 ? `${year + 1}-01` : `${year}-${String(number + 1).padStart(2, "0")}`;
    sent.set("from", `${month}-01`);
    sent.set("to", `${next}-01`);
  }
  return sent;
}

async function load() {
  const asked = query();
  history.replaceState(null, "", `${location.pathname}?${asked}`);
  const problem = document.getElementById("problem");
  const response = await fetch(`/v1/reports/summary?${summaryQuery(asked)}`);
  if (!response.ok) {
    problem.textContent = `${word("problem")} (${response.status})`;
    return;
  }
  const scorecards = await fetch(`/v1/reports/offices?${summaryQuery(asked)}`);
  if (!scorecards.ok) {
    problem.textContent = `${word("problem")} (${scorecards.status})`;
    return;
  }
  problem.textContent = "";
  state.report = await response.json();
  state.scorecards = await scorecards.json();
  const form = document.getElementById("filters");
  if (!form.month.value && state.report.filters.from) {
    form.month.value = state.report.filters.from.slice(0, 7);  // the month shown
  }
  draw();
  // Tests (and anyone curious) can tell a finished drawing from one under way.
  document.body.dataset.ready = String(Number(document.body.dataset.ready) + 1);
}

async function start() {
  const given = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  state.language = given.get("lang") === "en" ? "en" : "km";
  const labels = await fetch("/v1/reports/labels");
  if (labels.ok) state.labels = await labels.json();
  draw();
  if (given.get("district")) given.set("province", given.get("district").slice(0, 2));
  for (const name of ["province", "district", "month"]) {
    if (given.get(name)) form[name].value = given.get(name);
    fillPlaces();
  }
  form.addEventListener("change", (event) => {
    if (event.target.name === "province") form.district.value = "";
    fillPlaces();
    load();
  });
  for (const button of document.querySelectorAll("[data-scope]")) {
    button.addEventListener("click", () => {
      state.scope = button.dataset.scope;
      scorecardTable();
    });
  }
  for (const button of document.querySelectorAll("[data-language]")) {
    button.addEventListener("click", () => {
      state.language = button.dataset.language;
      for (const other of document.querySelectorAll("[data-language]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      draw();
    });
  }
  let resizing;
  window.addEventListener("resize", () => {  // charts drawn again for the new width
    clearTimeout(resizing);
    resizing = setTimeout(draw, 100);
  });
  document.querySelector(`[data-language="${state.language}"]`).click();
  await load();
}

start();
