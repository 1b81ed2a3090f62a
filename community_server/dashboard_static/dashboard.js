// Netbewust cooperative dashboard: polls the server's JSON and redraws. No build step.
// Operators' view (index.html) polls /api/v1/dashboard with the session cookie; the public
// view (public.html, body data-view="public") polls the aggregate-only /api/v1/public.
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
  },
};
const POLL_MS = 2000;
const PUBLIC = document.body.dataset.view === "public";
const DATA_URL = PUBLIC ? "../api/v1/public" : "../api/v1/dashboard";
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
    element("h3", {}, t("plan")), element("p", { class: "plan-status" }, parts.join(" · ")), table);
}

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
    renderPlan(summary.collective_plan, summary.transformer));
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
  if (PUBLIC) {
    document.getElementById("hidden").textContent = latest.hidden_transformers
      ? `${latest.hidden_transformers} ${t("hiddenTransformers")} (< ${latest.min_households})` : "";
    return;
  }
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
    latest = await response.json();
    render();
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
