/* The live inbox page (docs/inbox.md): lists and counts kept live over /ws/inbox/, one open
   conversation with its transcript, reply box (with /shortcut canned responses), typing,
   take / hand back / resolve and private notes. Actions are JSON POSTs with the admin's CSRF
   token; the socket only pushes. */
(function () {
  "use strict";
  const root = document.getElementById("inbox");
  if (!root) return;
  const api = root.dataset.api;
  const csrf = root.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  let view = "waiting";
  let current = null; // the open conversation's detail
  let shown = new Set(); // message ids shown in the open transcript
  let canned = [];
  let socket = null;
  let retry = 0;
  const unread = new Set();

  function status(text) { $("inbox-status").textContent = text; }

  async function call(url, body) {
    const options = body === undefined ? {} : {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(body),
    };
    const response = await fetch(url, {credentials: "same-origin", ...options});
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  function setCounts(counts) {
    for (const name of ["waiting", "mine", "open"]) $("count-" + name).textContent = counts[name];
  }

  async function loadList() {
    const label = $("label-filter").value.trim();
    const data = await call(`${api}?view=${view}` + (label ? `&label=${encodeURIComponent(label)}` : ""));
    setCounts(data.counts);
    const list = $("inbox-list");
    list.replaceChildren();
    for (const c of data.conversations) {
      const li = document.createElement("li");
      li.dataset.id = c.conversation_id;
      li.className = (current && current.conversation_id === c.conversation_id ? "current " : "") +
        (unread.has(c.conversation_id) ? "unread" : "");
      const who = c.assigned_agent ? ` · ${c.assigned_agent.name}` : "";
      const labels = c.labels.length ? ` [${c.labels.join(", ")}]` : "";
      li.textContent = `${c.chatbot} · ${c.handling.replaceAll("_", " ")}${who}${labels} — ${c.last_customer_text}`;
      li.addEventListener("click", () => openConversation(c.conversation_id));
      list.append(li);
    }
    if (!data.conversations.length) {
      const li = document.createElement("li");
      li.textContent = "Nothing here.";
      list.append(li);
    }
  }

  function addMessage(m) {
    if (m.message_id && shown.has(m.message_id)) return;
    if (m.message_id) shown.add(m.message_id);
    const li = document.createElement("li");
    li.className = m.role;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.role === "agent" ? (m.agent && m.agent.name) || "Agent"
      : m.role === "user" ? "Customer" : m.role === "assistant" ? "Bot" : "";
    li.append(who, document.createTextNode(m.content));
    for (const url of m.images || []) {
      const img = document.createElement("img");
      img.src = url;
      img.alt = "Customer's image";
      img.className = "inbox-thumb";
      li.append(document.createElement("br"), img);
    }
    if (m.analysis) {
      const a = document.createElement("small");
      a.className = "analysis";
      a.textContent = ` [${[m.analysis.topic, m.analysis.sentiment, m.analysis.outcome].filter(Boolean).join(" · ")}]`;
      li.append(a);
    }
    if (m.sources && m.sources.length) {
      const s = document.createElement("small");
      s.textContent = ` (${m.sources.length} source${m.sources.length > 1 ? "s" : ""})`;
      li.append(s);
    }
    $("conv-messages").append(li);
    $("conv-messages").scrollTop = $("conv-messages").scrollHeight;
  }

  function render(detail) {
    const changedConversation = !current || current.conversation_id !== detail.conversation_id;
    current = detail;
    $("inbox-conversation").hidden = false;
    $("conv-title").textContent = detail.chatbot;
    const who = detail.assigned_agent ? ` (${detail.assigned_agent.name})` : "";
    $("conv-state").textContent = detail.handling.replaceAll("_", " ") + who;
    if (changedConversation) { $("conv-messages").replaceChildren(); shown = new Set(); }
    for (const m of detail.messages) addMessage(m);
    const open = detail.handling !== "bot";
    for (const b of document.querySelectorAll("#conv-actions button")) b.disabled = !detail.may_act || !open;
    $("conv-reply").hidden = !detail.may_act || !open;
    $("assign-to").replaceChildren(...detail.assignable.map((a) => {
      const option = document.createElement("option");
      option.value = a.id;
      option.textContent = a.name;
      option.selected = !!detail.assigned_agent && detail.assigned_agent.id === a.id;
      return option;
    }));
    $("assign-to").disabled = !detail.may_act || !open;
    $("note-form").hidden = !detail.may_act;
    $("labels-form").hidden = !detail.may_act;
    if (changedConversation) $("labels-text").value = detail.labels.join(", ");
    $("notes-list").replaceChildren(...detail.notes.map((n) => {
      const li = document.createElement("li");
      li.textContent = `${n.author || "?"}: ${n.text}`;
      return li;
    }));
  }

  async function openConversation(id) {
    unread.delete(id);
    $("conv-error").textContent = "";
    render(await call(`${api}/${id}`));
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({type: "open", conversation_id: id, last_event_id: 0}));
    }
    loadList();
  }

  async function act(action, body) {
    if (!current) return;
    $("conv-error").textContent = "";
    try {
      render(await call(`${api}/${current.conversation_id}/${action}`, body || {}));
      if (action === "take" || action === "reply") {
        socket && socket.send(JSON.stringify({type: "open", conversation_id: current.conversation_id, last_event_id: 0}));
      }
      loadList();
    } catch (err) {
      $("conv-error").textContent = err.message;
    }
  }

  // --- typing, with a pause after which "stopped typing" is sent ---------------------------
  let typingSent = 0;
  let typingTimer = null;
  function typing() {
    if (!current || !socket || socket.readyState !== WebSocket.OPEN) return;
    const now = Date.now();
    if (now - typingSent > 3000) {
      typingSent = now;
      socket.send(JSON.stringify({type: "typing", conversation_id: current.conversation_id, typing: true}));
    }
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => {
      typingSent = 0;
      socket.send(JSON.stringify({type: "typing", conversation_id: current.conversation_id, typing: false}));
    }, 4000);
  }

  function suggest() {
    const text = $("reply-text").value;
    const match = /(?:^|\s)\/([a-z0-9_-]*)$/.exec(text);
    const box = $("canned-suggestions");
    box.replaceChildren();
    if (!match) { box.hidden = true; return; }
    for (const c of canned.filter((c) => c.shortcut.startsWith(match[1])).slice(0, 8)) {
      const li = document.createElement("li");
      li.textContent = `/${c.shortcut} — ${c.text.slice(0, 80)}`;
      li.addEventListener("click", () => {
        $("reply-text").value = text.slice(0, text.length - match[1].length - 1) + c.text;
        box.hidden = true;
        $("reply-text").focus();
      });
      box.append(li);
    }
    box.hidden = !box.children.length;
  }

  // A desktop notification for a new request while the page is in the background, once the
  // agent allowed it ("Notify me").
  function notifyWaiting() {
    if (!("Notification" in window) || Notification.permission !== "granted" || !document.hidden) return;
    new Notification("A customer is waiting for a person", {tag: "inbox-waiting"});
  }
  const notifyButton = $("inbox-notify");
  if (notifyButton && "Notification" in window && Notification.permission === "default") {
    notifyButton.hidden = false;
    notifyButton.addEventListener("click", () => {
      Notification.requestPermission().then(() => { notifyButton.hidden = true; });
    });
  }

  // --- the staff socket ---------------------------------------------------------------------
  function onEvent(msg) {
    if (!current || msg.conversation_id !== current.conversation_id) return;
    if (msg.event === "customer_message") {
      addMessage({message_id: msg.data.message_id, role: "user", content: msg.data.text});
      $("conv-typing").hidden = true;
    } else if (msg.event === "agent_message") {
      addMessage({message_id: msg.data.message_id, role: "agent", content: msg.data.text, agent: msg.data.agent});
    } else if (msg.event === "typing" && msg.data.who === "customer") {
      $("conv-typing").hidden = !msg.data.typing;
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/inbox/`);
    socket.addEventListener("message", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "ready") {
        retry = 0;
        status("Live");
        setCounts(msg.counts);
        loadList();
        if (current) socket.send(JSON.stringify({type: "open", conversation_id: current.conversation_id, last_event_id: 0}));
      } else if (msg.type === "changed") {
        setCounts(msg.counts);
        if (msg.change === "waiting") notifyWaiting();
        if (!current || msg.conversation_id !== current.conversation_id) unread.add(msg.conversation_id);
        loadList();
        if (current && msg.conversation_id === current.conversation_id) {
          call(`${api}/${current.conversation_id}`).then(render);
        }
      } else if (msg.type === "event") {
        onEvent(msg);
      } else if (msg.type === "error") {
        status(msg.error.message);
      }
    });
    socket.addEventListener("close", (e) => {
      if (e.code >= 4400 && e.code < 4500) { status("Not allowed: " + e.code); return; }
      status("Reconnecting…");
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * 2 ** retry);
    });
  }

  for (const b of document.querySelectorAll("#inbox-views button")) {
    b.addEventListener("click", () => {
      view = b.dataset.view;
      for (const other of document.querySelectorAll("#inbox-views button")) other.classList.toggle("selected", other === b);
      loadList();
    });
  }
  for (const b of document.querySelectorAll("#conv-actions button[data-action]")) {
    b.addEventListener("click", () => act(b.dataset.action));
  }
  $("assign-button").addEventListener("click", () => {
    act("assign", {user_id: parseInt($("assign-to").value, 10)});
  });
  $("conv-reply").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("reply-text").value.trim();
    if (!text) return;
    $("reply-text").value = "";
    act("reply", {text});
  });
  $("reply-text").addEventListener("input", () => { typing(); suggest(); });
  $("labels-form").addEventListener("submit", (e) => {
    e.preventDefault();
    act("labels", {labels: $("labels-text").value.split(",")});
  });
  let filterTimer = null;
  $("label-filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => loadList().catch((err) => status(err.message)), 300);
  });
  $("note-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("note-text").value.trim();
    if (!text) return;
    $("note-text").value = "";
    act("note", {text});
  });
  // Last 7 days for the member's shops: handoff rate, time to first human reply, CSAT per agent.
  async function loadFigures() {
    const f = await call(`${root.dataset.figures}?days=7`);
    const rate = f.handoff_rate === null ? "–" : `${(f.handoff_rate * 100).toFixed(1)} %`;
    const wait = f.first_human_reply_seconds.median === null ? "–"
      : `${Math.round(f.first_human_reply_seconds.median)} s`;
    const csat = f.csat_per_agent.map((a) => `${a.agent} ${a.csat} (${a.ratings})`).join(", ") || "–";
    $("inbox-figures").textContent = `Last 7 days: ${f.conversations} conversations, ` +
      `handed to a person ${rate}, first human reply (median) ${wait}, CSAT per agent: ${csat}`;
  }
  loadFigures().catch(() => {});
  call(root.dataset.canned).then((rows) => { canned = rows; }).catch(() => {});
  loadList().catch((err) => status(err.message));
  connect();
})();
