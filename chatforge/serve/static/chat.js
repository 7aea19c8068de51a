// chat.js: the chat page at `/`: conversation history, streamed replies, stop, regenerate, feedback, and
// side-by-side comparisons. Model text is only ever shown through renderMarkdown (DOM nodes, no innerHTML).
//
// Stable hooks for tests (besides common.js's #login-*, #topbar, #nav-*, #logout):
//   #preview-notice             the research-preview notice (always visible)
//   #new-chat                   starts a new conversation (created on the server at the first message)
//   #conversation-list          <ul>; li.conversation[data-id] per conversation, li.active = the open one;
//     .conversation-title       (button) opens it
//     .conversation-rename      (button) swaps the title for input.conversation-rename-input: Enter/blur saves,
//                               Escape cancels
//     .conversation-delete      (button) asks inline; .conversation-delete-confirm deletes,
//                               .conversation-delete-cancel keeps it
//   #chat-title                 the open conversation's title
//   #messages                   the transcript; #empty-state when there is nothing yet
//     .message.user / .message.assistant   [data-message-id] once the server gave the id
//       .message-body           the rendered text; .message.assistant.streaming while it streams
//       .message-note           "stopped", "cut off at the length limit", error notes ([data-finish-reason])
//       .thumb-up / .thumb-down (buttons, aria-pressed) on EVERY assistant reply, enabled when it finished;
//                               either opens .feedback-box with textarea.feedback-reason (optional),
//                               .feedback-submit, .feedback-cancel; then .feedback-status says it was recorded
//                               and the message gets [data-feedback="up"|"down"]
//       .regenerate             (button) on the last assistant reply only, when nothing is streaming
//     .moderation-notice        [data-action="block"|"flag"] when a moderation event came: before the turn for
//                               the request, inside the reply (above its text) for an event with an index
//     .compare                  side by side: .compare-column[data-index="0"|"1"] each holding a .message.assistant;
//       .compare-choice         "Which is better?" shown when both finished: .choose-a, .choose-b, .choose-tie;
//                               after POST .../choose the block collapses to the chosen reply and
//                               .choice-status says what was recorded
//   #composer                   the form: #message-input (Enter sends, Shift+Enter is a newline), #send,
//                               #stop (visible while streaming; aborts the fetch), #compare-toggle (checkbox:
//                               ask for two replies side by side)
//   #chat-error                 the last error (the server's {"error": {"message"}})
//   #sidebar-toggle             shows the history drawer on narrow screens
// The open conversation's id is kept in the URL hash (/#12), so a reload reopens it.

import { $, api, ApiError, clear, errorMessage, h, icon, readJson, requestInit, showError, startPage } from "./common.js";
import { renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";

const state = {
  conversations: [],
  current: null, // id of the open conversation, or null for a new one
  stream: null, // {controller} while a reply streams
};

const FINISH_NOTES = {
  stopped: "Stopped.",
  cancelled: "Stopped.",
  length: "Cut off at the length limit.",
  content_filter: "Withheld by the content policy.",
  blocked: "Blocked by the content policy.",
  error: "The reply failed.",
};

const FEEDBACK_CHIPS = {
  down: ["Not true", "Harmful or unsafe", "Not helpful", "Refused a fine request", "Didn't ask what I meant"],
  up: ["Correct", "Helpful", "Clear"],
};

// --- conversations (sidebar) ---

async function loadConversations() {
  const data = await api("/api/conversations");
  state.conversations = data.data || [];
  renderConversations();
}

function renderConversations() {
  const list = $("#conversation-list");
  clear(list);
  if (!state.conversations.length) list.appendChild(h("li", { className: "conversation-empty", text: "No chats yet" }));
  for (const c of state.conversations) {
    const li = h("li", { className: "conversation" + (c.id === state.current ? " active" : ""), dataset: { id: c.id } });
    const title = h("button", {
      className: "conversation-title", text: c.title || "New chat", title: c.title || "New chat",
      attrs: { type: "button" }, on: { click: () => openConversation(c.id) },
    });
    const rename = h("button", {
      className: "conversation-rename icon", title: "Rename", attrs: { type: "button", "aria-label": "Rename" },
      on: { click: () => startRename(li, c) },
    }, icon("edit"));
    const del = h("button", {
      className: "conversation-delete icon", title: "Delete", attrs: { type: "button", "aria-label": "Delete" },
      on: { click: () => askDelete(li, c) },
    }, icon("trash"));
    li.append(title, h("span", { className: "conversation-actions" }, rename, del));
    list.appendChild(li);
  }
  const current = state.conversations.find((c) => c.id === state.current);
  $("#chat-title").textContent = current ? current.title || "New chat" : "New chat";
}

function startRename(li, conv) {
  const input = h("input", {
    className: "conversation-rename-input", value: conv.title || "", maxLength: 200,
    attrs: { "aria-label": "New title" },
  });
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== conv.title) {
      try {
        const updated = await api(`/api/conversations/${conv.id}`, { method: "PATCH", body: { title } });
        Object.assign(conv, updated);
      } catch (e) {
        showError($("#chat-error"), e);
      }
    }
    renderConversations();
  };
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") { ev.preventDefault(); finish(true); }
    if (ev.key === "Escape") { ev.preventDefault(); finish(false); }
  });
  input.addEventListener("blur", () => finish(true));
  clear(li);
  li.appendChild(input);
  input.focus();
  input.select();
}

function askDelete(li, conv) {
  const actions = li.querySelector(".conversation-actions");
  clear(actions);
  actions.append(
    h("button", {
      className: "conversation-delete-confirm danger", text: "Delete", attrs: { type: "button" },
      on: { click: () => deleteConversation(conv.id) },
    }),
    h("button", {
      className: "conversation-delete-cancel", text: "Keep", attrs: { type: "button" },
      on: { click: renderConversations },
    }),
  );
}

async function deleteConversation(id) {
  try {
    await api(`/api/conversations/${id}`, { method: "DELETE" });
  } catch (e) {
    showError($("#chat-error"), e);
    return;
  }
  state.conversations = state.conversations.filter((c) => c.id !== id);
  if (state.current === id) newChat();
  else renderConversations();
}

function setHash(id) {
  const want = id === null ? "" : `#${id}`;
  if (window.location.hash !== want) history.replaceState(null, "", want || window.location.pathname);
}

function newChat() {
  stopStream();
  document.body.classList.remove("sidebar-open");
  state.current = null;
  setHash(null);
  renderMessages([]);
  renderConversations();
  $("#message-input").focus();
}

async function openConversation(id) {
  stopStream();
  showError($("#chat-error"), "");
  let conv;
  try {
    conv = await api(`/api/conversations/${id}`);
  } catch (e) {
    showError($("#chat-error"), e);
    return;
  }
  state.current = conv.id;
  setHash(conv.id);
  document.body.classList.remove("sidebar-open");
  const known = state.conversations.find((c) => c.id === conv.id);
  if (known) known.title = conv.title;
  renderConversations();
  renderMessages(conv.messages || []);
}

// --- messages ---

function renderMessages(messages) {
  const box = $("#messages");
  clear(box);
  for (const m of messages) {
    if (m.role === "user") box.appendChild(userMessage(m.content, m.id));
    else if (m.role === "assistant") box.appendChild(assistantMessage(m).el);
  }
  $("#empty-state").hidden = messages.length > 0;
  updateRegenerate();
  scrollDown(true);
}

// what the user typed is shown as typed (plain text, newlines kept), never as Markdown
function userMessage(text, id) {
  const el = h("div", { className: "message user" },
    h("div", { className: "message-role", text: "You" }),
    h("div", { className: "message-body plain", text }));
  if (id !== undefined && id !== null) el.dataset.messageId = id;
  return el;
}

// An assistant reply: returns {el, id, text, setId(id), append(delta), note(msg), finish(reason)}. msg may be a stored message
// ({id, content, finish_reason, feedback, model}) or {} for one about to stream.
function assistantMessage(msg = {}, label = "Assistant") {
  const body = h("div", { className: "message-body" });
  const note = h("div", { className: "message-note", hidden: true });
  const up = h("button", {
    className: "thumb-up icon", title: "Good reply", disabled: true,
    attrs: { type: "button", "aria-label": "Good reply", "aria-pressed": "false" },
  }, icon("up"));
  const down = h("button", {
    className: "thumb-down icon", title: "Bad reply", disabled: true,
    attrs: { type: "button", "aria-label": "Bad reply", "aria-pressed": "false" },
  }, icon("down"));
  const regen = h("button", { className: "regenerate", hidden: true, attrs: { type: "button" } },
    icon("regenerate"), " Regenerate");
  const status = h("span", { className: "feedback-status", hidden: true, attrs: { role: "status" } });
  const actions = h("div", { className: "message-actions" }, up, down, regen, status);
  const box = h("div", { className: "feedback-box", hidden: true });
  const el = h("div", { className: "message assistant" },
    h("div", { className: "message-role", text: label + (msg.model ? ` · ${msg.model}` : "") }), body, note, actions, box);

  let text = msg.content || "";
  let frame = 0;
  const render = () => {
    frame = 0;
    clear(body);
    body.appendChild(renderMarkdown(text));
    scrollDown(false);
  };
  const reply = {
    el,
    get text() { return text; },
    get id() { return el.dataset.messageId; },
    setId(id) { if (id !== undefined && id !== null) el.dataset.messageId = id; },
    append(delta) {
      text += delta;
      if (!frame) frame = requestAnimationFrame(render);
    },
    setText(value) {
      text = value;
      if (!frame) frame = requestAnimationFrame(render);
    },
    note(message, reason) {
      note.textContent = message;
      note.hidden = !message;
      if (reason) note.dataset.finishReason = reason;
    },
    finish(reason) {
      if (frame) { cancelAnimationFrame(frame); render(); }
      el.classList.remove("streaming");
      if (reason) el.dataset.finishReason = reason;
      if (reason && FINISH_NOTES[reason]) reply.note(FINISH_NOTES[reason], reason);
      const ok = !!el.dataset.messageId;
      up.disabled = down.disabled = !ok;
    },
  };
  reply.setId(msg.id);
  render();
  up.addEventListener("click", () => openFeedback(el, box, "up", up, down, status));
  down.addEventListener("click", () => openFeedback(el, box, "down", up, down, status));
  regen.addEventListener("click", () => regenerate());
  if (msg.feedback && msg.feedback.rating) showRecorded(el, normRating(msg.feedback.rating), up, down, status);
  if (msg.id !== undefined) reply.finish(msg.finish_reason);
  return reply;
}

function normRating(r) {
  return r === "up" || r === 1 || r === "1" || r === "+1" ? "up" : "down";
}

function showRecorded(el, rating, up, down, status) {
  el.dataset.feedback = rating;
  up.setAttribute("aria-pressed", String(rating === "up"));
  down.setAttribute("aria-pressed", String(rating === "down"));
  up.classList.toggle("selected", rating === "up");
  down.classList.toggle("selected", rating === "down");
  status.textContent = `Feedback recorded (thumbs ${rating}). Thank you!`;
  status.hidden = false;
}

function openFeedback(el, box, rating, up, down, status) {
  const id = el.dataset.messageId;
  if (!id) return;
  clear(box);
  const reason = h("textarea", {
    className: "feedback-reason", rows: 3, maxLength: 2000,
    placeholder: rating === "down" ? "What was wrong with this reply? (optional)" : "What was good about it? (optional)",
    attrs: { "aria-label": "Reason (optional)" },
  });
  const chips = h("div", { className: "feedback-chips" }, FEEDBACK_CHIPS[rating].map((c) => h("button", {
    className: "feedback-chip", text: c, attrs: { type: "button" },
    on: { click: () => { reason.value = reason.value ? `${reason.value}; ${c}` : c; reason.focus(); } },
  })));
  const error = h("div", { className: "error", hidden: true, attrs: { role: "alert" } });
  const submit = h("button", { className: "feedback-submit primary", text: "Submit feedback", attrs: { type: "button" } });
  const cancel = h("button", { className: "feedback-cancel", text: "Cancel", attrs: { type: "button" } });
  box.dataset.rating = rating;
  box.append(
    h("div", { className: "feedback-title", text: rating === "down" ? "What went wrong?" : "What was good?" }),
    chips, reason, error, h("div", { className: "row" }, submit, cancel),
  );
  box.hidden = false;
  up.classList.toggle("pending", rating === "up");
  down.classList.toggle("pending", rating === "down");
  cancel.addEventListener("click", () => {
    box.hidden = true;
    up.classList.remove("pending");
    down.classList.remove("pending");
  });
  submit.addEventListener("click", async () => {
    submit.disabled = true;
    try {
      await api(`/api/messages/${id}/feedback`, { method: "POST", body: { rating, reason: reason.value.trim() } });
    } catch (e) {
      showError(error, e);
      submit.disabled = false;
      return;
    }
    box.hidden = true;
    up.classList.remove("pending");
    down.classList.remove("pending");
    showRecorded(el, rating, up, down, status);
  });
  reason.focus();
}

// only the last assistant turn (a reply, or a chosen comparison) offers Regenerate, and only when idle
function updateRegenerate() {
  const box = $("#messages");
  box.querySelectorAll(".regenerate").forEach((b) => { b.hidden = true; });
  const last = box.lastElementChild;
  if (!last || state.stream || state.current === null) return;
  if (last.classList.contains("message") && last.classList.contains("assistant") && last.dataset.messageId) {
    last.querySelector(".regenerate").hidden = false;
  }
}

function scrollDown(force) {
  const box = $("#messages");
  const near = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  if (force || near) box.scrollTop = box.scrollHeight;
}

// --- streaming ---

function setStreaming(on) {
  $("#send").disabled = on;
  $("#stop").hidden = !on;
  $("#send").hidden = on;
  document.body.classList.toggle("streaming", on);
}

function stopStream() {
  if (state.stream) state.stream.controller.abort();
}

async function send() {
  const input = $("#message-input");
  const content = input.value.trim();
  if (!content || state.stream) return;
  showError($("#chat-error"), "");
  if (state.current === null) {
    try {
      const conv = await api("/api/conversations", { method: "POST", body: {} });
      state.current = conv.id;
      state.conversations.unshift(conv);
      setHash(conv.id);
      renderConversations();
    } catch (e) {
      showError($("#chat-error"), e);
      return;
    }
  }
  input.value = "";
  autoGrow();
  const userEl = userMessage(content);
  $("#messages").appendChild(userEl);
  $("#empty-state").hidden = true;
  const body = { content };
  if ($("#compare-toggle").checked) body.compare = true;
  const ok = await stream(`/api/conversations/${state.current}/messages`, body, { userEl });
  if (!ok) {
    // the server did not take the message: put it back to send again
    userEl.remove();
    if (!input.value) input.value = content;
    autoGrow();
  }
}

async function regenerate() {
  if (state.stream || state.current === null) return;
  const last = $("#messages").lastElementChild;
  if (!last) return;
  showError($("#chat-error"), "");
  await stream(`/api/conversations/${state.current}/regenerate`, {}, { replaces: last });
}

// POST and read the reply stream into the transcript. Returns false when the server refused before starting.
async function stream(path, body, { userEl = null, replaces = null } = {}) {
  const controller = new AbortController();
  state.stream = { controller };
  setStreaming(true);
  updateRegenerate();
  const box = $("#messages");
  const placeholder = h("div", { className: "message assistant streaming pending" },
    h("div", { className: "message-role", text: "Assistant" }),
    h("div", { className: "message-body" }, h("span", { className: "typing", text: "…" })));
  if (replaces) replaces.classList.add("replacing");
  box.appendChild(placeholder);
  scrollDown(true);

  let started = false;
  let replies = []; // assistantMessage objects, by index
  let turn = null; // the element that holds the replies
  let compare = null;
  const finished = new Set();
  try {
    const res = await fetch(path, requestInit("POST", body, controller.signal));
    if (!res.ok) throw new ApiError(errorMessage(await readJson(res), res), res.status);
    for await (const ev of readEvents(res)) {
      if (ev.type === "start") {
        started = true;
        if (userEl && ev.user_message_id !== undefined) userEl.dataset.messageId = ev.user_message_id;
        const ids = ev.replies || [];
        if (ids.length >= 2) {
          compare = compareBlock(ids);
          replies = compare.replies;
          turn = compare.el;
        } else {
          replies = [assistantMessage({})];
          replies[0].setId(ids[0]);
          turn = replies[0].el;
        }
        replies.forEach((r) => r.el.classList.add("streaming"));
        if (replaces) replaces.remove();
        placeholder.replaceWith(turn);
      } else if (ev.type === "delta") {
        const r = replies[ev.index || 0];
        if (r) r.append(ev.text || "");
      } else if (ev.type === "done") {
        const i = ev.index || 0;
        const r = replies[i];
        if (r) {
          r.setId(ev.message_id);
          r.finish(ev.finish_reason);
          finished.add(i);
        }
      } else if (ev.type === "moderation") {
        const r = Number.isInteger(ev.index) ? replies[ev.index] : null;
        if (r) {
          // about one reply: the notice goes inside it; a blocked reply's text is replaced by the refusal
          if (ev.action === "block" && typeof ev.text === "string") r.setText(ev.text);
          moderationNotice(ev, r.el.querySelector(".message-body"));
        } else {
          moderationNotice(ev, turn || placeholder);
        }
      } else if (ev.type === "error") {
        const message = ev.message || "the reply failed";
        showError($("#chat-error"), message);
        replies.forEach((r, i) => { if (!finished.has(i)) r.note(`Error: ${message}`, "error"); });
      }
    }
  } catch (e) {
    if (e.name === "AbortError") {
      replies.forEach((r, i) => { if (!finished.has(i)) { r.finish("stopped"); finished.add(i); } });
    } else {
      showError($("#chat-error"), e);
      replies.forEach((r, i) => { if (!finished.has(i)) r.note(`Error: ${e.message}`, "error"); });
    }
  } finally {
    replies.forEach((r, i) => { if (!finished.has(i)) r.finish(null); });
    if (!started) {
      placeholder.remove();
      if (replaces) replaces.classList.remove("replacing");
    }
    if (compare) compare.ready();
    state.stream = null;
    setStreaming(false);
    updateRegenerate();
  }
  if (started) loadConversations().catch(() => {}); // picks up a title the server gave the chat
  return started;
}

function moderationNotice(ev, anchor) {
  const cats = (ev.categories || []).join(", ");
  const what = Number.isInteger(ev.index) ? "reply" : "request";
  const text = ev.action === "block"
    ? `This ${what} was blocked by the content policy${cats ? ` (${cats})` : ""}.`
    : `This ${what} was flagged for review${cats ? ` (${cats})` : ""}.`;
  const el = h("div", { className: "moderation-notice", text, dataset: { action: ev.action || "flag" }, attrs: { role: "note" } });
  anchor.parentNode ? anchor.before(el) : $("#messages").appendChild(el);
}

// two replies side by side, then "Which is better?"
function compareBlock(ids) {
  const replies = ids.slice(0, 2).map((id, i) => {
    const r = assistantMessage({}, i === 0 ? "Reply A" : "Reply B");
    r.setId(id);
    return r;
  });
  const columns = h("div", { className: "compare-columns" },
    replies.map((r, i) => h("div", { className: "compare-column", dataset: { index: i } }, r.el)));
  const status = h("div", { className: "choice-status", hidden: true, attrs: { role: "status" } });
  const error = h("div", { className: "error", hidden: true, attrs: { role: "alert" } });
  const buttons = [
    h("button", { className: "choose-a", text: "A is better", attrs: { type: "button" } }),
    h("button", { className: "choose-b", text: "B is better", attrs: { type: "button" } }),
    h("button", { className: "choose-tie", text: "Tie", attrs: { type: "button" } }),
  ];
  const choice = h("div", { className: "compare-choice", hidden: true },
    h("span", { className: "compare-question", text: "Which is better?" }), ...buttons, error);
  const el = h("div", { className: "compare" }, columns, choice, status);

  const choose = async (kind) => {
    const [a, b] = replies.map((r) => r.id);
    const body = kind === "b" ? { chosen: b, rejected: a } : { chosen: a, rejected: b };
    if (kind === "tie") body.tie = true;
    const toInt = (x) => (/^\d+$/.test(String(x)) ? Number(x) : x);
    body.chosen = toInt(body.chosen);
    body.rejected = toInt(body.rejected);
    buttons.forEach((btn) => { btn.disabled = true; });
    try {
      await api(`/api/conversations/${state.current}/choose`, { method: "POST", body });
    } catch (e) {
      showError(error, e);
      buttons.forEach((btn) => { btn.disabled = false; });
      return;
    }
    // the chosen reply stays in the chat as an ordinary one
    const kept = replies[kind === "b" ? 1 : 0];
    kept.el.querySelector(".message-role").textContent = "Assistant";
    const msg = kind === "tie" ? "Recorded: a tie (reply A stays in the chat)." : `Recorded: you preferred reply ${kind.toUpperCase()}.`;
    const note = h("div", { className: "choice-status", text: msg, dataset: { choice: kind }, attrs: { role: "status" } });
    el.replaceWith(note, kept.el);
    updateRegenerate();
  };
  buttons[0].addEventListener("click", () => choose("a"));
  buttons[1].addEventListener("click", () => choose("b"));
  buttons[2].addEventListener("click", () => choose("tie"));
  return {
    el, replies,
    ready() { choice.hidden = !replies.every((r) => r.id); },
  };
}

// --- composer ---

function autoGrow() {
  const input = $("#message-input");
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, 240) + "px";
}

async function main(user) {
  $("#new-chat").addEventListener("click", newChat);
  $("#composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    send();
  });
  $("#stop").addEventListener("click", stopStream);
  const input = $("#message-input");
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  input.addEventListener("input", autoGrow);
  $("#sidebar-toggle").addEventListener("click", () => document.body.classList.toggle("sidebar-open"));
  await loadConversations();
  const fromHash = window.location.hash.slice(1);
  if (fromHash && state.conversations.some((c) => String(c.id) === fromHash)) {
    await openConversation(state.conversations.find((c) => String(c.id) === fromHash).id);
  } else {
    renderMessages([]);
  }
  input.focus();
  return user;
}

startPage({ onUser: main });
