// The dashboard: the public summary (/v1/reports/summary) drawn as bar charts in inline
// SVG, in Khmer or English, for one ended calendar month (the public figures are by
// month only) and a province or a district. Written to be served as it is: no build
// step, no library.
"use strict";

const WORDS = {
  km: {
    title: "សំឡេងយើង — របាយការណ៍ពាក្យបណ្តឹង", province: "ខេត្ត/រាជធានី",
    district: "ស្រុក/ខណ្ឌ", from: "ចាប់ពីថ្ងៃ", to: "ដល់ថ្ងៃ (មិនរាប់បញ្ចូល)", period: "រយៈពេល",
    all: "ទាំងអស់", month: "ខែ", week: "សប្តាហ៍", day: "ថ្ងៃ", year: "ឆ្នាំ",
    by_period: "ករណីតាមរយៈពេល", by_type: "ករណីតាមប្រភេទ", gender: "ករណីតាមភេទ",
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
  },
  en: {
    title: "Our Voice — complaints report", province: "Province", district: "District",
    from: "From", to: "Until (not included)", period: "Period", all: "All",
    month: "Month", week: "Week", day: "Day", year: "Year",
    by_period: "Cases by period", by_type: "Cases by type", gender: "Cases by gender",
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
  },
};

const state = { language: "km", labels: { provinces: [], categories: [] }, report: null };

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
  const row = 26, labelWidth = 170, width = 520, valueWidth = 80;
  const largest = Math.max(1, ...entries.map(([, v]) => v ?? 0));
  const chart = svg("svg", { width: "100%", viewBox: `0 0 ${width} ${entries.length * row + 4}`,
                             role: "img" });
  entries.forEach(([key, value], index) => {
    const y = index * row + 2;
    const bar = svg("g", { "data-key": key, "data-value": value === null ? "hidden" : value });
    const shown = label(key);
    bar.append(svg("text", { x: labelWidth - 8, y: y + 16, "text-anchor": "end" },
                   shown.length > 26 ? shown.slice(0, 25) + "…" : shown));
    const length = !value ? 0 : Math.max(2, (width - labelWidth - valueWidth) * value / largest);
    bar.append(svg("rect", { x: labelWidth, y: y + 3, width: length, height: row - 8, rx: 3,
                             fill: "var(--bar)" }));
    bar.append(svg("text", { x: labelWidth + length + 6, y: y + 16 },
                   value === null ? word("hidden") : value.toLocaleString()));
    chart.append(bar);
  });
  holder.append(chart);
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
    ["median", median === null ? "–" : `${(median / 3600).toFixed(1)} ${word("hours")}`],
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
  barChart(chart("by_area"), sorted(byArea), placeName);
  barChart(chart("by_category"), sorted(report.by_category), categoryName);
  barChart(chart("escalations"), sorted(report.escalations.by_reason));
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
  problem.textContent = "";
  state.report = await response.json();
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
  for (const button of document.querySelectorAll("[data-language]")) {
    button.addEventListener("click", () => {
      state.language = button.dataset.language;
      for (const other of document.querySelectorAll("[data-language]")) {
        other.setAttribute("aria-pressed", String(other === button));
      }
      draw();
    });
  }
  document.querySelector(`[data-language="${state.language}"]`).click();
  await load();
}

start();
