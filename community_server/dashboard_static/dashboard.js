// Netbewust cooperative dashboard: polls the server's JSON and redraws. No build step.
// Operators' view (index.html) polls /api/v1/dashboard with the session cookie; the public
// view (public.html, body data-view="public") polls the aggregate-only /api/v1/public.
// Charts (uPlot, vendored in static/vendor) come from the history endpoint, asked once a
// minute per transformer; every chart's data is also at window.__charts[id] (label, data)
// so a test can compare what is drawn with the JSON.
"use strict";

const TEXTS = {
  nl: {
    title: "Netbewust — coöperatie", loading: "Laden…", households: "Huishoudens",
    household: "Huishouden", state: "Status", load: "Verbruik", limit: "Limiet",
    online: "online", offline: "offline", none: "—", cap: "limiet transformator",
    reporting: "rapporteren", limited: "begrensd", updated: "Bijgewerkt",
    unreachable: "Server niet bereikbaar", phase: "toewijzing", noCap: "geen limiet",
    excluded: "buiten de toewijzing", roundFailed: "toewijzing mislukt",
    source: "bron", mode: "modus", rule: "verdeling", nonMember: "niet-leden",
    exportCap: "terugleverlimiet", exportLimited: "teruglevering begrensd",
    dso: "Netbeheerder", link: "OpenADR-verbinding", linkUp: "verbonden", linkLost: "verbroken sinds",
    noVen: "geen OpenADR (alleen HTTP)", audit: "Recente signalen",
    plan: "Dagplan (collectief)", planned: "gepland", no_prices: "geen prijzen",
    no_households: "geen huishoudens met basislijn", invalid: "ongeldig", failed: "mislukt",
    plannedAt: "gepland om", communityCost: "kosten samen", aloneCost: "kosten alleen",
    costAlone: "Alleen", costPlan: "Plan", costSettled: "Verrekend", notDelivered: "Niet geleverd",
    unplanned: "zonder basislijn", bindingSteps: "kwartieren op de limiet",
    limitedSteps: "Begrensde kwartieren",
    logout: "Uitloggen", hiddenTransformers: "transformatoren met te weinig leden voor een openbaar totaal",
    chartLoad: "Belasting en limiet: afgelopen 24 uur en het dagplan",
    chartFlex: "Geleverde flexibiliteit per kwartier (basislijn min gemeten)",
    chartCosts: "Kosten per huishouden in het dagplan", chartTotals: "Totalen van het dagplan",
    seriesCap: "limiet", seriesCapPlan: "limiet in het plan (min marge)", seriesNonMembers: "niet-leden",
    seriesMembers: "leden gemeten", seriesPlanned: "leden gepland", seriesAlone: "leden alleen (plan)",
    seriesFlex: "flexibiliteit", frame: "capaciteitsframe", emergency: "noodsignaal", dynamic: "dynamische limiet",
    costTogether: "Samen", community: "Coöperatie", time: "Tijd",
    settlement: "Verrekening", settlementOpen: "lopende periode, tot nu toe", settlementClosed: "afgesloten",
    settlementTotals: "Totalen van de periode", settlementCredits: "Tegoed per huishouden",
    saving: "besparing samen", flex: "flexibiliteit", shared: "besparing verdeeld", fees: "bijdragen",
    penalties: "tekorten", credit: "tegoed",
  },
  en: {
    title: "Netbewust — cooperative", loading: "Loading…", households: "Households",
    household: "Household", state: "State", load: "Load", limit: "Limit",
    online: "online", offline: "offline", none: "—", cap: "transformer cap",
    reporting: "reporting", limited: "limited", updated: "Updated",
    unreachable: "Server unreachable", phase: "allocation", noCap: "no cap",
    excluded: "left out of the allocation", roundFailed: "allocation failed",
    source: "source", mode: "mode", rule: "rule", nonMember: "non-members",
    exportCap: "export cap", exportLimited: "export limited",
    dso: "Grid operator", link: "OpenADR link", linkUp: "connected", linkLost: "lost since",
    noVen: "no OpenADR (HTTP only)", audit: "Recent signals",
    plan: "Day plan (collective)", planned: "planned", no_prices: "no prices",
    no_households: "no households with a baseline", invalid: "invalid", failed: "failed",
    plannedAt: "planned at", communityCost: "cost together", aloneCost: "cost alone",
    costAlone: "Alone", costPlan: "Plan", costSettled: "Settled", notDelivered: "Not delivered",
    unplanned: "without a baseline", bindingSteps: "quarter hours at the cap",
    limitedSteps: "Limited quarter hours",
    logout: "Log out", hiddenTransformers: "transformers with too few members for a public total",
    chartLoad: "Load and cap: the last 24 hours and the day plan",
    chartFlex: "Flexibility delivered per quarter hour (baseline less measured)",
    chartCosts: "Cost per household in the day plan", chartTotals: "Day plan totals",
    seriesCap: "cap", seriesCapPlan: "cap in the plan (less margin)", seriesNonMembers: "non-members",
    seriesMembers: "members measured", seriesPlanned: "members planned", seriesAlone: "members alone (plan)",
    seriesFlex: "flexibility", frame: "capacity frame", emergency: "emergency", dynamic: "dynamic cap",
    costTogether: "Together", community: "Cooperative", time: "Time",
    settlement: "Settlement", settlementOpen: "open period, so far", settlementClosed: "closed",
    settlementTotals: "Period totals", settlementCredits: "Credit per household",
    saving: "saving together", flex: "flexibility", shared: "saving shared", fees: "fees",
    penalties: "shortfalls", credit: "credit",
  },
};
const POLL_MS = 2000;
const HISTORY_MS = 60000;
const PUBLIC = document.body.dataset.view === "public";
const DATA_URL = PUBLIC ? "../api/v1/public" : "../api/v1/dashboard";
const HISTORY_URL = PUBLIC ? "../api/v1/public/history" : "../api/v1/dashboard/history";
const MODE_COLOURS = { frame: "rgba(233, 162, 59, 0.22)", emergency: "rgba(200, 66, 59, 0.3)",
  dynamic: "rgba(42, 111, 219, 0.12)" };
const histories = {}; // transformer id -> the history endpoint's last answer
const settlements = {}; // community id -> its open period's settlement (operators only)
const chartBoxes = new Map(); // transformer id -> its charts' element, kept across redraws
const charts = {}; // chart id -> uPlot instance, or a bar chart's { series, data }
window.__charts = charts;
let csrfToken = null;
let language = (localStorage.getItem("netbewust-lang") ||
  (navigator.language || "nl")).startsWith("en") ? "en" : "nl";
let latest = null;

function t(key) { return TEXTS[language][key]; }

function kw(watts) {
  if (watts === null || watts === undefined) return t("none");
  return `${(watts / 1000).toLocaleString(language, { minimumFractionDigits: 1, maximumFractionDigits: 1 })} kW`;
}

function euro(value) {
  if (typeof value !== "number") return t("none");
  return value.toLocaleString(language, { style: "currency", currency: "EUR" });
}

function kwh(wattHours) {
  if (typeof wattHours !== "number") return t("none");
  return `${(wattHours / 1000).toLocaleString(language, { maximumFractionDigits: 2 })} kWh`;
}

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
  children.forEach((child) => node.append(child));
  return node;
}

// The collective plan's status and fairness report; any field may be missing or null.
function renderPlan(plan, transformer) {
  if (!plan || typeof plan !== "object") return "";
  const status = TEXTS[language][plan.status] || String(plan.status);
  const parts = [status];
  if (plan.detail) parts.push(plan.detail);
  if (plan.planned_at) parts.push(`${t("plannedAt")} ${new Date(plan.planned_at).toLocaleTimeString(language)}`);
  if (typeof plan.cost_eur === "number") {
    parts.push(`${t("communityCost")} ${euro(plan.cost_eur)} / ${t("aloneCost")} ${euro(plan.cost_alone_eur)}`);
  }
  if (plan.status === "planned" && typeof plan.binding_steps === "number") parts.push(`${plan.binding_steps} ${t("bindingSteps")}`);
  const unplanned = Array.isArray(plan.unplanned) ? plan.unplanned : [];
  if (unplanned.length) parts.push(`${unplanned.length} ${t("unplanned")}`);
  (Array.isArray(plan.excluded) ? plan.excluded : [])
    .forEach((e) => parts.push(`${e.household} ${t("excluded")}: ${e.detail}`));
  const households = Array.isArray(plan.households) ? plan.households : [];
  const table = households.length ? element("table", { class: "plan-households" },
    element("thead", {}, element("tr", {}, ...["household", "costAlone", "costPlan", "costSettled", "notDelivered", "limitedSteps"]
      .map((key) => element("th", {}, t(key))))),
    element("tbody", {}, ...households.map((row) => element("tr", { "data-household": row.household_id },
      element("td", {}, String(row.household_id)),
      element("td", { class: "number" }, euro(row.cost_alone_eur)),
      element("td", { class: "number" }, euro(row.cost_eur)),
      element("td", { class: "number" }, euro(row.settled_cost_eur)),
      element("td", { class: "number" }, kwh(row.shortfall_wh)),
      element("td", { class: "number" }, typeof row.limited_steps === "number" ? String(row.limited_steps) : t("none")))))) : "";
  return element("section", { class: `collective-plan ${plan.status}`, id: `plan-${transformer}` },
    element("h3", {}, t("plan")), element("p", { class: "plan-status" }, parts.join(" · ")),
    ...costCharts(plan, transformer), table ? element("div", { class: "table-scroll" }, table) : "");
}

// --- charts -----------------------------------------------------------------------------

function kwAxis(u, values) { return values.map((watts) => `${(watts / 1000).toLocaleString(language)} kW`); }

// Charts' times on a 24-hour clock in either language.
function timeAxis(u, values) {
  return values.map((seconds) => new Date(seconds * 1000).toLocaleTimeString(
    language === "en" ? "en-GB" : "nl-NL", { hour: "2-digit", minute: "2-digit" }));
}

// Every power axis shows zero, so a small load does not look like a large one.
const WITH_ZERO = { range: (u, min, max) => [Math.min(0, min ?? 0), Math.max(1000, max ?? 0)] };

function chartWidth(box) { return Math.max(240, box.clientWidth || 600); }

function chartHeight() { return window.innerWidth < 600 ? 200 : 260; }

// One quarter hour's value per x: the past where it has one, else the plan.
function aligned(xs, times, values) {
  const byTime = new Map(times.map((time, i) => [time, values[i]]));
  return xs.map((x) => (byTime.has(x) ? byTime.get(x) : null));
}

// The load chart's x values and series: the last hours as measured, then the day plan.
function loadData(history) {
  const past = history.past;
  const plan = history.plan || { times: [], members_w: [], members_alone_w: [], cap_w: [], non_member_w: [], mode: [] };
  const xs = [...new Set([...past.times, ...plan.times])].sort((a, b) => a - b);
  const pastNonMembers = aligned(xs, past.times, past.non_member_w);
  const planNonMembers = aligned(xs, plan.times, plan.non_member_w);
  const pastModes = aligned(xs, past.times, past.mode);
  const planModes = aligned(xs, plan.times, plan.mode);
  return {
    data: [xs, aligned(xs, past.times, past.cap_w), aligned(xs, plan.times, plan.cap_w),
      xs.map((x, i) => (pastNonMembers[i] ?? planNonMembers[i])),
      aligned(xs, past.times, past.members_w), aligned(xs, plan.times, plan.members_w),
      aligned(xs, plan.times, plan.members_alone_w)],
    modes: xs.map((x, i) => (pastModes[i] ?? planModes[i])),
  };
}

// Frames and emergencies as bands behind the lines, one per quarter hour in force.
function drawModes(u) {
  const modes = u.netbewustModes;
  const xs = u.data[0];
  const { ctx, bbox } = u;
  ctx.save();
  modes.forEach((mode, i) => {
    if (!mode || !MODE_COLOURS[mode]) return;
    const left = u.valToPos(xs[i], "x", true);
    const right = u.valToPos(xs[i] + 900, "x", true);
    ctx.fillStyle = MODE_COLOURS[mode];
    ctx.fillRect(left, bbox.top, right - left, bbox.height);
  });
  ctx.restore();
}

function series(key, stroke, extra) {
  return { label: t(key), stroke, width: 2, paths: uPlot.paths.stepped({ align: 1 }),
    value: (u, watts) => kw(watts), spanGaps: false, ...extra };
}

function loadOptions(box) {
  return {
    width: chartWidth(box), height: chartHeight(),
    scales: { x: { time: true }, y: WITH_ZERO },
    series: [
      { label: t("time"), value: (u, seconds) => (seconds === null ? "" : new Date(seconds * 1000).toLocaleString(language)) },
      series("seriesCap", "#c8423b"),
      series("seriesCapPlan", "#c8423b", { dash: [6, 4], width: 1.5 }),
      series("seriesNonMembers", "#7a8a93", { fill: "rgba(122, 138, 147, 0.12)", width: 1.5 }),
      series("seriesMembers", "#12594f", { fill: "rgba(42, 157, 143, 0.18)" }),
      series("seriesPlanned", "#2a6fdb"),
      series("seriesAlone", "#8e6bbf", { dash: [3, 3], width: 1.5 }),
    ],
    axes: [{ values: timeAxis }, { values: kwAxis, size: 70 }],
    hooks: { drawClear: [drawModes] },
  };
}

function flexOptions(box) {
  return {
    width: chartWidth(box), height: Math.round(chartHeight() * 0.7),
    scales: { x: { time: true }, y: WITH_ZERO },
    series: [
      { label: t("time"), value: (u, seconds) => (seconds === null ? "" : new Date(seconds * 1000).toLocaleString(language)) },
      { label: t("seriesFlex"), stroke: "#2a9d8f", fill: "rgba(42, 157, 143, 0.55)", value: (u, watts) => kw(watts),
        paths: uPlot.paths.bars({ size: [0.9, 40], align: 1 }) },
    ],
    axes: [{ values: timeAxis }, { values: kwAxis, size: 70 }],
  };
}

// A uPlot chart in `parent`, made anew when the language changed (its labels), else fed
// the data drawn from `source` (the history answer) unless it shows that one already.
function timeChart(id, parent, source, options, data, modes) {
  let chart = charts[id];
  const current = chart && chart.netbewustLanguage === language && chart.root.isConnected;
  if (current && chart.netbewustSource === source) return; // drawn from this answer already
  if (current) {
    chart.netbewustModes.splice(0, Infinity, ...modes);
    chart.netbewustSource = source;
    chart.setData(data);
    return;
  }
  if (chart && chart.destroy) chart.destroy();
  parent.replaceChildren();
  // The modes are there before the first draw (drawModes reads them from the instance).
  const withModes = { ...options, hooks: { ...options.hooks,
    init: [(u) => { u.netbewustModes = [...modes]; }] } };
  chart = new uPlot(withModes, data, parent);
  chart.netbewustLanguage = language;
  chart.netbewustSource = source;
  charts[id] = chart;
}

function legendOfModes() {
  return element("p", { class: "chart-note" }, ...["frame", "emergency"].map((mode) =>
    element("span", { class: `mode-key ${mode}` }, t(mode))));
}

function chartBox(transformer) {
  let box = chartBoxes.get(transformer);
  if (!box) {
    box = element("section", { class: "charts", id: `charts-${transformer}` },
      element("h3", { "data-text": "chartLoad" }, t("chartLoad")),
      element("div", { class: "chart", id: `chart-load-${transformer}` }), legendOfModes(),
      element("h3", { "data-text": "chartFlex" }, t("chartFlex")),
      element("div", { class: "chart", id: `chart-flex-${transformer}` }));
    chartBoxes.set(transformer, box);
  }
  return box;
}

function drawCharts() {
  chartBoxes.forEach((box, transformer) => {
    const history = histories[transformer];
    if (!history || !box.isConnected) return;
    box.querySelectorAll("[data-text]").forEach((node) => { node.textContent = t(node.dataset.text); });
    box.querySelector(".chart-note").replaceWith(legendOfModes());
    const load = loadData(history);
    timeChart(`load-${transformer}`, box.querySelector(`#chart-load-${transformer}`), history,
      loadOptions(box), load.data, load.modes);
    const past = history.past;
    timeChart(`flex-${transformer}`, box.querySelector(`#chart-flex-${transformer}`), history,
      flexOptions(box), [past.times, past.flexibility_w], []);
  });
}

// Horizontal bars (readable on a phone however many rows): one group per row, a bar per
// series, as long as its value against the largest one.
function barChart(id, title, rows, keys) {
  const data = [rows.map((row) => row.label), ...keys.map((key) => rows.map((row) => row[key]))];
  charts[id] = { series: [{ label: "" }, ...keys.map((key) => ({ label: t(key) }))], data };
  const largest = Math.max(1e-9, ...data.slice(1).flat().filter((v) => typeof v === "number").map(Math.abs));
  const groups = rows.map((row) => element("div", { class: "bar-group" },
    element("span", { class: "bar-label" }, String(row.label)),
    ...keys.map((key) => {
      const value = row[key];
      const width = typeof value === "number" ? (Math.abs(value) / largest) * 100 : 0;
      return element("div", { class: `bar-row ${key}` },
        element("span", { class: "bar-key" }, t(key)),
        element("span", { class: `bar-fill${value < 0 ? " negative" : ""}`, style: `width: ${width.toFixed(1)}%` }),
        element("span", { class: "bar-value" }, euro(value)));
    })));
  return element("section", { class: "bar-chart", id: `chart-${id}` }, element("h4", {}, title), ...groups);
}

function costCharts(plan, transformer) {
  const households = Array.isArray(plan.households) ? plan.households : [];
  if (!households.length) return [];
  const settled = households.reduce((sum, row) => sum + (row.settled_cost_eur || 0), 0);
  const totals = [{ label: t("community"), costAlone: plan.cost_alone_eur, costTogether: plan.cost_eur,
    costSettled: Math.round(settled * 100) / 100 }];
  const rows = households.map((row) => ({ label: row.household_id, costAlone: row.cost_alone_eur,
    costTogether: row.cost_eur, costSettled: row.settled_cost_eur }));
  const keys = ["costAlone", "costTogether", "costSettled"];
  return [barChart(`totals-${transformer}`, t("chartTotals"), totals, keys),
    barChart(`costs-${transformer}`, t("chartCosts"), rows, keys)];
}

// The open settlement period of every community: totals, and each household's credit.
function renderSettlement() {
  return Object.entries(settlements).map(([community, period]) => {
    const households = Array.isArray(period.households) ? period.households : [];
    const cents = (key) => households.reduce((sum, row) => sum + (row[key] || 0), 0) / 100;
    const totals = [{ label: `${community} · ${period.period}`, saving: period.saving_eur,
      flex: cents("flex_cents"), shared: period.distributed_cents / 100, fees: cents("fee_cents"),
      penalties: cents("penalty_cents"), credit: period.credit_cents / 100 }];
    const credits = households.map((row) => ({ label: row.household, credit: row.credit_cents / 100 }));
    return element("article", { class: "transformer settlement", id: `settlement-${community}` },
      element("h2", {}, `${t("settlement")} ${community} · ${period.period}`),
      element("p", { class: "note" }, period.closed ? t("settlementClosed") : t("settlementOpen")),
      barChart(`settlement-${community}`, t("settlementTotals"), totals,
        ["saving", "flex", "shared", "fees", "penalties", "credit"]),
      credits.length ? barChart(`credits-${community}`, t("settlementCredits"), credits, ["credit"]) : "");
  });
}

async function pollSettlement(communities) {
  await Promise.all(communities.map(async (community) => {
    try {
      const base = `../api/v1/communities/${encodeURIComponent(community)}/settlement`;
      const overview = await fetch(base, { cache: "no-store" });
      if (!overview.ok) return; // a server without settlement: no chart
      const { open_period: open } = await overview.json();
      const period = await fetch(`${base}/${encodeURIComponent(open)}`, { cache: "no-store" });
      if (period.ok) settlements[community] = await period.json();
    } catch (error) {
      // Asked again with the next history round.
    }
  }));
}

async function pollHistory() {
  const transformers = latest ? latest.transformers.map((summary) => summary.transformer) : [];
  await Promise.all(transformers.map(async (transformer) => {
    try {
      const response = await fetch(`${HISTORY_URL}?transformer=${encodeURIComponent(transformer)}`, { cache: "no-store" });
      if (response.ok) histories[transformer] = await response.json();
    } catch (error) {
      // The next round asks again; the status line already says when the server is away.
    }
  }));
  if (!PUBLIC && latest) {
    await pollSettlement([...new Set(latest.transformers.map((summary) => summary.community))]);
  }
  render(); // draws the charts too
  setTimeout(pollHistory, transformers.length ? HISTORY_MS : POLL_MS);
}

window.addEventListener("resize", () => {
  Object.values(charts).forEach((chart) => {
    if (chart.setSize && chart.root.isConnected) {
      chart.setSize({ width: chartWidth(chart.root.parentElement), height: chart.height });
    }
  });
});

function renderTransformer(summary) {
  const share = summary.cap_w ? summary.load_w / summary.cap_w : 0;
  const bar = element("div", { style: `width: ${Math.min(100, Math.max(0, share * 100)).toFixed(1)}%` });
  bar.className = share > 1 ? "over" : share > 0.9 ? "high" : "";
  const figures = element("p", { class: "figures" },
    element("span", { id: `load-${summary.transformer}`, class: "load" }, kw(summary.load_w)),
    " / ",
    element("span", { class: "cap" }, summary.cap_w ? kw(summary.cap_w) : t("noCap")),
    ` ${t("cap")}`);
  const details = element("p", {},
    `${summary.online}/${summary.members} ${t("online")} · ${summary.reporting} ${t("reporting")}` +
    (typeof summary.limited === "number" ? ` · ${summary.limited} ${t("limited")}` : "") +
    (summary.allocation ? ` · ${t("phase")}: ${summary.allocation}` : ""));
  const cap = summary.cap;
  const capLine = cap && cap.mode ? element("p", { class: "cap-source" },
    `${t("mode")}: ${cap.mode} · ${t("source")}: ${cap.source} · ${t("rule")}: ${cap.rule}` +
    ` · ${t("nonMember")}: ${kw(cap.non_member_w)} (${cap.non_member_source})` +
    (cap.export_cap_w !== null && cap.export_cap_w !== undefined
      ? ` · ${t("exportCap")}: ${kw(cap.export_cap_w)}${cap.export_limited ? ` (${t("exportLimited")})` : ""}`
      : "")) : "";
  const problems = cap ? [
    ...(cap.error ? [`${t("roundFailed")} (${cap.failed_rounds}×): ${cap.error}`] : []),
    ...(cap.excluded || []).map((e) => `${e.household} ${t("excluded")}: ${e.detail}`),
  ] : [];
  const problemList = problems.length ? element("ul", { class: "allocation-problems" },
    ...problems.map((text) => element("li", {}, text))) : "";
  return element("article", { class: "transformer" },
    element("h2", {}, `${summary.name} (${summary.community})`), figures,
    element("div", { class: "bar" }, bar), details, capLine, problemList,
    chartBox(summary.transformer), renderPlan(summary.collective_plan, summary.transformer));
}

function renderDso(dso) {
  if (!dso) return [];
  const link = dso.link;
  const linkText = !link ? t("noVen")
    : link.connected && !link.lost_since ? t("linkUp")
      : `${t("linkLost")} ${link.lost_since || "?"}${link.last_error ? ` (${link.last_error})` : ""}`;
  const entries = dso.audit.map((entry) => element("li", {},
    `${new Date(entry.at).toLocaleString(language)} · ${entry.action} · ${entry.source}` +
    `${entry.transformer ? ` · ${entry.transformer}` : ""} · ${entry.detail}`));
  return [element("h2", {}, t("dso")), element("p", { id: "dso-link" }, `${t("link")}: ${linkText}`),
    element("h3", {}, t("audit")), element("ul", { id: "dso-audit" }, ...entries)];
}

function render() {
  document.documentElement.lang = language;
  document.querySelectorAll("[data-text]").forEach((node) => { node.textContent = t(node.dataset.text); });
  document.querySelectorAll("[data-lang]").forEach((button) => {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language));
  });
  if (!latest) return;
  const status = document.getElementById("status");
  status.className = "";
  status.textContent = `${t("updated")} ${new Date(latest.generated_at).toLocaleTimeString(language)}`;
  document.getElementById("transformers").replaceChildren(...latest.transformers.map(renderTransformer));
  drawCharts();
  if (PUBLIC) {
    document.getElementById("hidden").textContent = latest.hidden_transformers
      ? `${latest.hidden_transformers} ${t("hiddenTransformers")} (< ${latest.min_households})` : "";
    return;
  }
  document.getElementById("settlement").replaceChildren(...renderSettlement());
  document.getElementById("dso").replaceChildren(...renderDso(latest.dso));
  const rows = latest.households.map((row) => element("tr", { "data-household": row.household },
    element("td", {}, row.household),
    element("td", { class: row.online ? "online" : "offline" }, t(row.online ? "online" : "offline")),
    element("td", { class: "number" }, kw(row.load_w)),
    element("td", { class: "number" }, kw(row.limit_w))));
  document.querySelector("#households tbody").replaceChildren(...rows);
}

// Who is logged in, and the CSRF token the logout (and any later change) must send.
async function loadSession() {
  const response = await fetch("../api/v1/session", { cache: "no-store" });
  if (response.status === 401) { window.location.assign("login"); return; }
  if (!response.ok) return;
  const session = await response.json();
  csrfToken = session.csrf_token;
  document.getElementById("operator").textContent = session.username;
}

async function logOut() {
  await fetch("../api/v1/session", { method: "DELETE", headers: { "X-CSRF-Token": csrfToken || "" } });
  window.location.assign("login");
}

async function poll() {
  try {
    const response = await fetch(DATA_URL, { cache: "no-store" });
    if (response.status === 401 && !PUBLIC) { window.location.assign("login"); return; }
    if (!response.ok) throw new Error(String(response.status));
    const first = latest === null;
    latest = await response.json();
    render();
    if (first) pollHistory();
  } catch (error) {
    const status = document.getElementById("status");
    status.className = "error";
    status.textContent = t("unreachable");
  }
  setTimeout(poll, POLL_MS);
}

document.querySelectorAll("[data-lang]").forEach((button) => {
  button.addEventListener("click", () => {
    language = button.dataset.lang;
    localStorage.setItem("netbewust-lang", language);
    render();
  });
});
if (!PUBLIC) {
  document.getElementById("logout").addEventListener("click", logOut);
  loadSession();
}
render();
poll();
