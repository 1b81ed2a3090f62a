// Operator login: posts the form as JSON to the session endpoint, then opens the dashboard.
"use strict";

const TEXTS = {
  nl: {
    title: "Netbewust — coöperatie", heading: "Inloggen als beheerder", username: "Gebruikersnaam",
    password: "Wachtwoord", submit: "Inloggen", wrong: "Onjuiste gebruikersnaam of wachtwoord",
    tooMany: "Te veel pogingen; probeer het later opnieuw", failed: "Inloggen lukt nu niet",
  },
  en: {
    title: "Netbewust — cooperative", heading: "Operator login", username: "User name",
    password: "Password", submit: "Log in", wrong: "Wrong user name or password",
    tooMany: "Too many attempts; try again later", failed: "Cannot log in right now",
  },
};
const language = (localStorage.getItem("netbewust-lang") ||
  (navigator.language || "nl")).startsWith("en") ? "en" : "nl";
document.documentElement.lang = language;
document.querySelectorAll("[data-text]").forEach((node) => { node.textContent = TEXTS[language][node.dataset.text]; });

document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  const error = document.getElementById("login-error");
  error.textContent = "";
  try {
    const response = await fetch("../api/v1/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
      cache: "no-store",
    });
    if (response.ok) {
      window.location.assign("./");
      return;
    }
    error.textContent = TEXTS[language][response.status === 401 ? "wrong" : response.status === 429 ? "tooMany" : "failed"];
  } catch (failure) {
    error.textContent = TEXTS[language].failed;
  }
  form.password.value = "";
});
