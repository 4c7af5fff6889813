// The dog chat, generation and web image search (uses $, state, api from app.js; t from i18n.js).
//
// The chat's photo: the photo uploaded above is shown in the chat as a chip ("photo attached ×")
// and goes with the next question. The server keeps it for the conversation's follow-ups
// ("does it mind the cold?"), so after it is sent the chip stays, saying so, instead of the page
// detaching it silently while the server still answers about it; × removes it, and when the
// server already has it the next question starts a new conversation.
"use strict";

const chat = {
  sessionId: null,
  photo: null, // {file, url} shown on the chip
  photoSent: false, // the server holds the photo for this conversation
  labels: null, // GET /api/dogs/labels, loaded with the chat
  providers: null,
};

function chatLog() {
  return $("chat-log");
}

// the newest answer fully in view: after it is complete, and again as its pictures load
function scrollChat() {
  const log = chatLog();
  log.scrollTop = log.scrollHeight;
}

function bubble(kind, text, extra) {
  const el = document.createElement("div");
  el.className = `bubble ${kind}`;
  if (extra) el.append(extra);
  const words = document.createElement("span");
  words.className = "bubble-text";
  words.translate = false; // the question or answer, in the language it was written in
  words.textContent = text;
  el.append(words);
  chatLog().append(el);
  scrollChat();
  return el;
}

// a line of the page's own (translated), e.g. "photo removed"
function noteBubble(key) {
  const el = document.createElement("div");
  el.className = "bubble note";
  el.dataset.i18n = key;
  el.textContent = t(key);
  chatLog().append(el);
  scrollChat();
}

function factsList(facts) {
  const list = document.createElement("ul");
  list.className = "facts";
  list.facts = facts; // re-worded when the language changes
  drawFacts(list);
  return list;
}

function drawFacts(list) {
  const labels = chat.labels || {};
  list.replaceChildren(
    ...list.facts.map((fact) => {
      const item = document.createElement("li");
      item.textContent = factLabel(fact, labels);
      return item;
    }),
  );
}

function redrawChat() {
  for (const list of document.querySelectorAll(".facts")) drawFacts(list);
  for (const tag of document.querySelectorAll(".provider")) {
    tag.textContent = t("chat.provider", { name: tag.dataset.name });
  }
  drawChip();
  showKeys(chat.providers);
}

// ---- the photo chip ---------------------------------------------------------------------------
// its own object URL: the search panel's is revoked when its photo changes
function attachChatPhoto(file) {
  if (chat.photo) URL.revokeObjectURL(chat.photo.url);
  chat.photo = { file, url: URL.createObjectURL(file) };
  chat.photoSent = false;
  drawChip();
}

function drawChip() {
  const chip = $("chat-photo");
  chip.hidden = !chat.photo;
  if (!chat.photo) return;
  $("chat-photo-img").src = chat.photo.url;
  const key = chat.photoSent ? "chat.photoKept" : "chat.photoNext";
  $("chat-photo-text").dataset.i18n = key;
  $("chat-photo-text").textContent = t(key);
}

function removeChatPhoto() {
  if (!chat.photo) return;
  if (chat.photoSent) {
    chat.sessionId = null; // the server's copy goes with its conversation
    noteBubble("chat.photoRemoved");
  }
  URL.revokeObjectURL(chat.photo.url);
  chat.photo = null;
  chat.photoSent = false;
  drawChip();
}

// ---- asking -----------------------------------------------------------------------------------
async function ask(event) {
  event.preventDefault();
  const input = $("question");
  const message = input.value.trim();
  if (!message) {
    noteBubble("chat.empty");
    chatLog().lastElementChild.classList.add("error");
    return;
  }
  const photo = chat.photo && !chat.photoSent ? chat.photo : null;
  let thumb = null;
  if (photo) {
    thumb = document.createElement("img");
    thumb.src = photo.url;
    thumb.alt = "";
  }
  bubble("user", message, thumb);
  input.value = "";
  $("ask-button").disabled = true;
  const pending = bubble("bot", "…");
  try {
    const form = new FormData();
    form.append("message", message);
    if (chat.sessionId) form.append("session_id", chat.sessionId);
    if (photo) form.append("file", photo.file, photo.file.name || "photo");
    const reply = await api("/api/dogs/chat", { method: "POST", body: form });
    chat.sessionId = reply.session_id || chat.sessionId;
    if (photo && chat.photo === photo) chat.photoSent = true;
    drawChip();
    showReply(pending, reply);
  } catch (err) {
    pending.querySelector(".bubble-text").textContent = err.message;
    pending.classList.add("error");
    showMessage(errorWords(err));
  } finally {
    $("ask-button").disabled = false;
    scrollChat(); // after the whole answer (text, facts, pictures) is in the log
  }
}

function showReply(el, reply) {
  el.querySelector(".bubble-text").textContent = reply.text;
  el.classList.add("answer");
  if (reply.provider) {
    const tag = document.createElement("span");
    tag.className = "provider";
    tag.dataset.name = reply.provider;
    tag.textContent = t("chat.provider", { name: reply.provider });
    el.prepend(tag);
  }
  if (reply.facts && reply.facts.length) el.append(factsList(reply.facts));
  if (reply.card) el.append(mediaCard(reply.card));
  if (reply.photos && reply.photos.length) {
    const grid = document.createElement("div");
    grid.className = "offer";
    for (const photo of reply.photos) grid.append(offerCard(photo));
    el.append(grid);
  }
  if (reply.task) {
    const holder = document.createElement("div");
    el.append(holder);
    followTask(reply.task, holder);
  }
  for (const media of el.querySelectorAll("img, video")) {
    media.addEventListener("load", scrollChat, { once: true });
    media.addEventListener("loadedmetadata", scrollChat, { once: true });
  }
}

function offerCard(photo) {
  const fig = document.createElement("figure");
  fig.className = "media-card offered";
  const img = document.createElement("img");
  img.src = `${photo.thumbnail}?size=${THUMB}`;
  img.alt = photo.caption || t("chat.offered");
  const cap = document.createElement("figcaption");
  cap.translate = false;
  cap.textContent = photo.label;
  fig.append(img, cap);
  return fig;
}

// ---- generation and web search ---------------------------------------------------------
function mediaCard(item) {
  const fig = document.createElement("figure");
  fig.className = "media-card";
  fig.dataset.kind = item.kind;
  let media;
  if (item.kind === "video") {
    media = document.createElement("video");
    media.controls = true;
    media.preload = "metadata";
    media.src = item.url;
  } else {
    media = document.createElement("img");
    media.src = item.url;
    media.alt = item.prompt;
    media.translate = false;
  }
  const cap = document.createElement("figcaption");
  cap.translate = false; // the prompt, and the provider's label
  cap.textContent = `${item.prompt} — ${item.label || t("gen.generated")} (${item.provider} ${item.model})`;
  fig.append(media, cap);
  return fig;
}

function progressCard(task) {
  const fig = document.createElement("figure");
  fig.className = "media-card pending";
  const bar = document.createElement("progress");
  const cap = document.createElement("figcaption");
  cap.className = "task-status";
  fig.append(bar, cap);
  const update = (now) => {
    cap.textContent = t("gen.task", { status: now.status, seconds: Math.round(now.elapsed) });
  };
  update(task);
  return { fig, update };
}

async function followTask(task, holder) {
  const view = progressCard(task);
  holder.append(view.fig);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let now;
    try {
      now = await api(`/api/generate/tasks/${task.id}`);
    } catch (err) {
      view.fig.replaceWith(errorLine(err.message));
      return;
    }
    if (now.status === "success") {
      view.fig.replaceWith(mediaCard(now.result));
      scrollChat();
      return;
    }
    if (now.status === "failed") {
      view.fig.replaceWith(errorLine(now.error || t("gen.taskFailed")));
      return;
    }
    view.update(now);
  }
}

function errorLine(text) {
  const p = document.createElement("p");
  p.className = "message error";
  p.textContent = text;
  return p;
}

async function generate(kind) {
  const prompt = $("gen-prompt").value.trim();
  if (!prompt) {
    showMessage(() => t("gen.needPrompt"));
    return;
  }
  clearMessage();
  const holder = document.createElement("div");
  holder.className = "gen-item";
  $("gen-results").prepend(holder);
  try {
    if (kind === "image") {
      holder.textContent = t("gen.generating");
      const item = await api("/api/generate/image", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt }),
      });
      holder.textContent = "";
      holder.append(mediaCard(item));
    } else {
      const form = new FormData();
      form.append("prompt", prompt);
      if ($("gen-attach").checked && state.file) form.append("file", state.file, state.file.name);
      const task = await api("/api/generate/video", { method: "POST", body: form });
      await followTask(task, holder);
    }
  } catch (err) {
    holder.replaceWith(errorLine(err.message));
  }
}

async function searchWeb() {
  if (!state.file) {
    showMessage(() => t("web.needPhoto"));
    return;
  }
  clearMessage();
  const holder = document.createElement("div");
  holder.className = "gen-item";
  holder.textContent = t("web.searching");
  $("gen-results").prepend(holder);
  try {
    const form = new FormData();
    form.append("file", state.file, state.file.name || "photo");
    const result = await api("/api/web-search", { method: "POST", body: form });
    holder.textContent = "";
    if (!result.hits.length) holder.textContent = t("web.none");
    for (const hit of result.hits) {
      const link = document.createElement("a");
      link.className = "web-hit";
      link.href = hit.url || "#";
      link.rel = "noreferrer noopener";
      link.target = "_blank";
      link.translate = false;
      link.textContent = `${Number(hit.score).toFixed(2)} · ${hit.title || hit.url || t("web.image")}`;
      holder.append(link);
    }
  } catch (err) {
    holder.replaceWith(errorLine(err.message));
  }
}

function showKeys(providers) {
  chat.providers = providers;
  const missing = Object.entries(providers || {})
    .filter(([name, on]) => !on && name !== "vision")
    .map(([name]) => name);
  const text = missing.length ? t("keys.missing", { names: missing.join(", ") }) : "";
  for (const id of ["keys", "chat-keys"]) {
    $(id).textContent = text;
    $(id).hidden = !text;
  }
}

// ---- start -------------------------------------------------------------------------------
async function showChat(available, providers) {
  $("chat").hidden = !available;
  $("chat-open").hidden = !available;
  showKeys(providers);
  if (!available) return;
  try {
    chat.labels = await api("/api/dogs/labels");
    redrawChat();
  } catch (err) {
    chat.labels = null; // the facts keep their keys; the answer's text still names them
  }
}

// narrower than a desktop, the chat is a sheet over the page, opened from a floating button
function openChat(open) {
  $("chat").classList.toggle("open", open);
  $("chat-open").classList.toggle("away", open);
  if (open) {
    scrollChat();
    $("question").focus({ preventScroll: true });
  }
}

function setupChat() {
  $("chat-form").addEventListener("submit", ask);
  $("chat-photo-remove").addEventListener("click", removeChatPhoto);
  $("chat-open").addEventListener("click", () => openChat(true));
  $("chat-close").addEventListener("click", () => openChat(false));
  $("new-chat").addEventListener("click", () => {
    chat.sessionId = null;
    if (chat.photoSent) {
      URL.revokeObjectURL(chat.photo.url); // it went with the old conversation
      chat.photo = null;
    }
    chat.photoSent = false;
    drawChip();
    chatLog().textContent = "";
  });
  $("gen-form").addEventListener("submit", (event) => {
    event.preventDefault();
    generate("image");
  });
  $("gen-video").addEventListener("click", () => generate("video"));
  $("web-search").addEventListener("click", searchWeb);
}
