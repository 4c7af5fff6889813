// A result card's descriptions: why a text search matched it (hit.matched), and a panel that
// lists the photo's captions, annotations, tags and automatic captions (generated ones marked
// "auto") with a box to add an annotation and a × to remove one. Writes need the server's
// token (`crossmodal serve --token`): asked once, kept for this tab (sessionStorage).
"use strict";

const TOKEN_KEY = "crossmodal.token";
const notes = { canWrite: false };

function savedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  } catch (err) {
    return "";
  }
}

function keepToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (err) {
    // storage disabled: the token is asked again next time
  }
}

function noteSpan(className, text, data = false) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  if (data) el.translate = false; // a person's or a model's text: shown as it is
  return el;
}

// A translated label whose words follow the language switch (data-i18n).
function labelSpan(className, key) {
  const el = noteSpan(className, t(key));
  el.dataset.i18n = key;
  return el;
}

// "Matched: «Max at grandma's farm» · your note · words: max, farm"
function matchedLines(hit) {
  const box = document.createElement("div");
  box.className = "card-matched";
  for (const m of hit.matched || []) {
    const line = document.createElement("div");
    line.className = "matched-line";
    line.append(labelSpan("matched-label", "notes.matched"), noteSpan("matched-text", m.text, true));
    line.append(labelSpan("note-kind", `notes.kind.${m.kind}`));
    if (!m.by_person) line.append(labelSpan("note-auto", "notes.auto"));
    if (m.words && m.words.length) {
      line.append(labelSpan("matched-how", "notes.words"), noteSpan("matched-words", m.words.join(", "), true));
    }
    box.append(line);
  }
  return box;
}

async function notesApi(url, options = {}) {
  const token = savedToken();
  const headers = { ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(url, { ...options, headers });
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    if (response.status === 401) keepToken("");
    const detail = body && typeof body.detail === "string" ? body.detail : String(response.status);
    throw new Error(detail);
  }
  return body;
}

function noteError(panel, detail) {
  const box = panel.querySelector(".notes-error");
  box.replaceChildren(labelSpan("notes-error-prefix", "notes.refused"), noteSpan("", ` ${detail}`, true));
  box.hidden = false;
}

async function drawNotes(panel, imageId) {
  const list = panel.querySelector(".notes-list");
  try {
    const found = await notesApi(`/api/images/${imageId}/descriptions`);
    list.replaceChildren();
    for (const d of found.descriptions) {
      const item = document.createElement("li");
      item.append(noteSpan("note-text", d.text, true), labelSpan("note-kind", `notes.kind.${d.kind}`));
      if (!d.by_person) item.append(labelSpan("note-auto", "notes.auto"));
      if (d.kind === "annotation" && notes.canWrite) {
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "note-remove";
        remove.textContent = "×";
        remove.dataset.i18nAriaLabel = "notes.remove";
        remove.setAttribute("aria-label", t("notes.remove"));
        remove.addEventListener("click", () => changeNote(panel, imageId, `/${d.id}`, { method: "DELETE" }));
        item.append(remove);
      }
      list.append(item);
    }
    if (!found.descriptions.length) list.append(labelSpan("notes-none", "notes.none"));
  } catch (err) {
    noteError(panel, err.message);
  }
}

async function changeNote(panel, imageId, suffix, options) {
  panel.querySelector(".notes-error").hidden = true;
  const token = panel.querySelector(".notes-token");
  if (token.value.trim()) keepToken(token.value.trim());
  try {
    await notesApi(`/api/images/${imageId}/annotations${suffix}`, options);
    token.value = "";
    panel.querySelector(".notes-input").value = "";
    await drawNotes(panel, imageId);
  } catch (err) {
    noteError(panel, err.message);
  }
  token.hidden = Boolean(savedToken());
}

function notesForm(panel, imageId) {
  const form = document.createElement("form");
  form.className = "notes-form";
  const input = document.createElement("input");
  input.className = "notes-input";
  input.maxLength = 2000;
  input.dataset.i18nPlaceholder = "notes.placeholder";
  input.placeholder = t("notes.placeholder");
  input.dataset.i18nAriaLabel = "notes.placeholder";
  input.setAttribute("aria-label", t("notes.placeholder"));
  const token = document.createElement("input");
  token.className = "notes-token";
  token.type = "password";
  token.autocomplete = "off";
  token.dataset.i18nPlaceholder = "notes.token";
  token.placeholder = t("notes.token");
  token.dataset.i18nAriaLabel = "notes.token";
  token.setAttribute("aria-label", t("notes.token"));
  token.hidden = Boolean(savedToken());
  const add = document.createElement("button");
  add.type = "submit";
  add.className = "notes-add";
  add.dataset.i18n = "notes.add";
  add.textContent = t("notes.add");
  form.append(input, token, add);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = JSON.stringify({ text: input.value });
    changeNote(panel, imageId, "", { method: "POST", body, headers: { "Content-Type": "application/json" } });
  });
  return form;
}

// The panel under a card: closed until asked (the descriptions are fetched on opening).
function notesPanel(imageId) {
  const panel = document.createElement("details");
  panel.className = "card-notes";
  const summary = document.createElement("summary");
  summary.dataset.i18n = "notes.summary";
  summary.textContent = t("notes.summary");
  const list = document.createElement("ul");
  list.className = "notes-list";
  const error = document.createElement("div");
  error.className = "notes-error";
  error.hidden = true;
  panel.append(summary, list, error);
  if (notes.canWrite) panel.append(notesForm(panel, imageId));
  else panel.append(labelSpan("notes-readonly", "notes.readonly"));
  panel.addEventListener("toggle", () => {
    if (panel.open) drawNotes(panel, imageId);
  });
  return panel;
}
