/*
 * Chat widget: embed with one tag, no build step (docs/widget.md).
 *
 *   <script src="https://HOST/static/widget/chat-widget.js" data-chatbot="demo"
 *           data-widget-key="pk_…" async></script>
 *
 * Messages go out over REST (POST /api/process-message); each answer is followed over the
 * conversation's WebSocket with {"type": "resume", turn_id, last_event_id}, so a reconnect
 * continues exactly after the last event shown. When WebSockets are unavailable or keep failing,
 * Server-Sent Events (GET /api/stream-events/<turn>/sse, the browser's EventSource) take over,
 * and polling (GET /api/stream-events/<turn>) after them. Server text is only ever rendered with
 * textContent.
 */
(function () {
  "use strict";

  var script =
    document.currentScript ||
    (function () {
      var found = document.querySelectorAll('script[data-chatbot][src*="chat-widget"]');
      return found[found.length - 1] || null;
    })();
  if (!script || script.__chatWidget) return;
  script.__chatWidget = true;

  // --- options (data attributes) -----------------------------------------------------------------

  var attr = function (name, fallback) {
    var value = script.getAttribute("data-" + name);
    return value === null || value === "" ? fallback : value;
  };
  var CHATBOT_ID = attr("chatbot", "");
  var WIDGET_KEY = attr("widget-key", "");
  var SRC = new URL(script.src, document.baseURI);
  var API_BASE = attr("api-base", SRC.origin).replace(/\/+$/, "");
  var CSS_URL = attr("css", SRC.href.replace(/\.js(\?|#|$)/, ".css$1"));
  var TRANSPORT = attr("transport", "auto"); // auto | websocket | sse | polling
  var LANGUAGE_OVERRIDE = attr("language", "");
  var USER_ID = attr("user-id", "");
  var OPEN_ON_LOAD = attr("open", "false") === "true";
  var POSITION = attr("position", "right") === "left" ? "left" : "right";
  var ACCENT = attr("color", "");
  var MAX_IMAGE_MB = parseFloat(attr("max-image-mb", "10"));
  if (!CHATBOT_ID) {
    console.warn("chat widget: the script tag needs data-chatbot");
    return;
  }

  var WS_MAX_FAILURES = 3; // consecutive failed connections before falling back to polling
  var WS_BACKOFF_MS = 500; // first reconnect delay; doubles per failure
  var WS_BACKOFF_MAX_MS = 8000;
  var WS_SILENCE_PING_MS = 15000; // while an answer is due: ping after this much silence…
  var WS_SILENCE_DROP_MS = 25000; // …and treat the socket as dead after this much
  var SSE_MAX_FAILURES = 3; // event streams refused or lost before opening, then polling
  var SSE_EVENTS = [
    "start",
    "metadata",
    "source_documents",
    "token",
    "order",
    "tool_call",
    "tool_result",
    // A person's part of the conversation, on a human turn (docs/inbox.md).
    "agent_waiting",
    "agent_joined",
    "agent_message",
    "customer_message",
    "typing",
    "agent_left",
    "error",
    "end",
  ];
  var POLL_INTERVAL_MS = 700;
  var POLL_BACKOFF_MAX_MS = 10000;
  var IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
  var STORAGE_KEY = "chat-widget:" + API_BASE + ":" + CHATBOT_ID;
  var WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

  // --- texts -------------------------------------------------------------------------------------

  var TEXTS = {
    en: {
      launcher: "Chat with us",
      open: "Open chat",
      close: "Close chat",
      chat: "Chat",
      log: "Conversation",
      inputLabel: "Your message",
      placeholder: "Write a message…",
      send: "Send",
      stop: "Stop the answer",
      attach: "Attach a photo",
      removePhoto: "Remove photo",
      yourPhoto: "Your photo",
      photoOnly: "I sent a photo.",
      uploading: "Uploading the photo…",
      you: "You",
      writing: "Writing…",
      resumeQuestion: "Resume your previous conversation?",
      resumeYes: "Yes, continue",
      resumeNo: "No, start over",
      resumeFailed: "That conversation can't be continued, so we start a new one.",
      rateLimited: "Too many messages, try again in {n} s.",
      uploadRateLimited: "Too many photos, try again in {n} s.",
      network: "Could not reach the chat service. Check your connection and try again.",
      failed: "Sorry, something went wrong and the answer stopped. Please try again.",
      cancelled: "The answer was stopped.",
      incomplete: "(This answer was interrupted.)",
      feedbackAsk: "Was this answer helpful?",
      helpful: "Helpful",
      notHelpful: "Not helpful",
      feedbackFailed: "Your vote could not be saved. Please try again.",
      sources: "Sources",
      gone: "This conversation is no longer available. Your next message starts a new one.",
      originRefused: "This chat is not available on this site.",
      reconnecting: "Connection lost. Reconnecting…",
      polling: "The live connection is unavailable; answers may arrive a little slower.",
      imageTooLarge: "The image is larger than {mb} MB. Please choose a smaller one.",
      imageType: "Please choose a JPEG, PNG, GIF or WebP image.",
      help: "Contact us",
      back: "Back to the chat",
      supportOpen: "Customer service is open now.",
      supportClosed: "Customer service is closed right now.",
      hours: "Opening hours: {hours}",
      email: "Email",
      phone: "Phone",
      talkHuman: "Talk to a person",
      handoffTitle: "Talk to a person",
      handoffReason: "What do you need help with? (optional)",
      handoffSubmit: "Ask for a person",
      contactTitle: "Write to customer service",
      contactIntro: "Leave a message and we will answer you by email.",
      name: "Your name (optional)",
      yourEmail: "Your email",
      yourEmailOptional: "Your email (optional)",
      message: "Message",
      contactSubmit: "Send message",
      alreadyHandedOff: "Your request has been passed on to our customer service.",
      waitingForPerson: "Waiting for a person — usual wait {n} min.",
      personJoined: "{name} joined the chat.",
      personTyping: "{name} is typing…",
      personLeftBot: "{name} left the chat. The assistant answers again.",
      personLeftResolved: "{name} closed the conversation as resolved.",
      personLeftAgent: "{name} passed the chat to a colleague.",
      noPersonNow: "Nobody can chat right now; write to us below and we will answer by email.",
      person: "Customer service",
      rate: "Rate the chat",
      rateTitle: "Rate this conversation",
      rateLegend: "How helpful was this conversation? (1 = not at all, 5 = very)",
      star: "{n} of 5",
      comment: "Comment (optional)",
      rateSubmit: "Send rating",
      rated: "Thank you for your rating!",
      loading: "Loading…",
      order: "Order {number}",
      orderStatus: "Status",
      items: "Items",
      shipment: "Shipment",
      trackingNumber: "Tracking number",
      track: "Track the parcel",
      orderPage: "See the order status",
      statuses: {
        processing: "Being prepared",
        partially_shipped: "Partly shipped",
        shipped: "Shipped",
        delivered: "Delivered",
        completed: "Completed",
        on_hold: "On hold",
        cancelled: "Cancelled",
        refunded: "Refunded",
        pending_payment: "Awaiting payment",
        unknown: "Unknown",
      },
      days: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    },
    da: {
      launcher: "Chat med os",
      open: "Åbn chat",
      close: "Luk chat",
      chat: "Chat",
      log: "Samtale",
      inputLabel: "Din besked",
      placeholder: "Skriv en besked…",
      send: "Send",
      stop: "Stop svaret",
      attach: "Vedhæft et billede",
      removePhoto: "Fjern billede",
      yourPhoto: "Dit billede",
      photoOnly: "Jeg har sendt et billede.",
      uploading: "Sender billedet…",
      you: "Dig",
      writing: "Skriver…",
      resumeQuestion: "Vil du fortsætte din tidligere samtale?",
      resumeYes: "Ja, fortsæt",
      resumeNo: "Nej, start forfra",
      resumeFailed: "Den samtale kan ikke fortsættes, så vi starter en ny.",
      rateLimited: "For mange beskeder – prøv igen om {n} s.",
      uploadRateLimited: "For mange billeder – prøv igen om {n} s.",
      network: "Kunne ikke få forbindelse til chatten. Tjek din forbindelse og prøv igen.",
      failed: "Beklager, noget gik galt, og svaret stoppede. Prøv venligst igen.",
      cancelled: "Svaret blev stoppet.",
      incomplete: "(Dette svar blev afbrudt.)",
      feedbackAsk: "Var dette svar nyttigt?",
      helpful: "Nyttigt",
      notHelpful: "Ikke nyttigt",
      feedbackFailed: "Din stemme kunne ikke gemmes. Prøv venligst igen.",
      sources: "Kilder",
      gone: "Samtalen findes ikke længere. Din næste besked starter en ny.",
      originRefused: "Chatten er ikke tilgængelig på denne side.",
      reconnecting: "Forbindelsen blev afbrudt. Forbinder igen…",
      polling: "Live-forbindelsen er ikke tilgængelig; svar kan komme lidt langsommere.",
      imageTooLarge: "Billedet er større end {mb} MB. Vælg venligst et mindre.",
      imageType: "Vælg venligst et JPEG-, PNG-, GIF- eller WebP-billede.",
      help: "Kontakt os",
      back: "Tilbage til chatten",
      supportOpen: "Kundeservice har åbent nu.",
      supportClosed: "Kundeservice har lukket lige nu.",
      hours: "Åbningstider: {hours}",
      email: "E-mail",
      phone: "Telefon",
      talkHuman: "Tal med en person",
      handoffTitle: "Tal med en person",
      handoffReason: "Hvad skal du have hjælp til? (valgfrit)",
      handoffSubmit: "Bed om en person",
      contactTitle: "Skriv til kundeservice",
      contactIntro: "Skriv en besked, så svarer vi dig på e-mail.",
      name: "Dit navn (valgfrit)",
      yourEmail: "Din e-mail",
      yourEmailOptional: "Din e-mail (valgfrit)",
      message: "Besked",
      contactSubmit: "Send besked",
      alreadyHandedOff: "Din henvendelse er givet videre til vores kundeservice.",
      waitingForPerson: "Venter på en medarbejder — normal ventetid {n} min.",
      personJoined: "{name} er kommet ind i chatten.",
      personTyping: "{name} skriver…",
      personLeftBot: "{name} har forladt chatten. Assistenten svarer igen.",
      personLeftResolved: "{name} har afsluttet samtalen som løst.",
      personLeftAgent: "{name} har givet chatten videre til en kollega.",
      noPersonNow: "Ingen kan chatte lige nu; skriv til os herunder, så svarer vi på e-mail.",
      person: "Kundeservice",
      rate: "Bedøm chatten",
      rateTitle: "Bedøm samtalen",
      rateLegend: "Hvor godt hjalp samtalen dig? (1 = slet ikke, 5 = rigtig godt)",
      star: "{n} af 5",
      comment: "Kommentar (valgfri)",
      rateSubmit: "Send bedømmelse",
      rated: "Tak for din bedømmelse!",
      loading: "Henter…",
      order: "Ordre {number}",
      orderStatus: "Status",
      items: "Varer",
      shipment: "Forsendelse",
      trackingNumber: "Trackingnummer",
      track: "Følg pakken",
      orderPage: "Se status på ordren",
      statuses: {
        processing: "Bliver pakket",
        partially_shipped: "Delvist sendt",
        shipped: "Sendt",
        delivered: "Leveret",
        completed: "Afsluttet",
        on_hold: "Sat i bero",
        cancelled: "Annulleret",
        refunded: "Refunderet",
        pending_payment: "Afventer betaling",
        unknown: "Ukendt",
      },
      days: ["man", "tir", "ons", "tor", "fre", "lør", "søn"],
    },
  };
  var texts = TEXTS.en;
  function t(key, vars) {
    var text = texts[key] !== undefined ? texts[key] : TEXTS.en[key];
    if (vars) {
      Object.keys(vars).forEach(function (name) {
        text = text.split("{" + name + "}").join(String(vars[name]));
      });
    }
    return text;
  }

  // --- small helpers -----------------------------------------------------------------------------

  var idCounter = 0;
  function uid(prefix) {
    idCounter += 1;
    return "cbw-" + prefix + "-" + idCounter;
  }

  function randomKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var s = "";
    for (var i = 0; i < 32; i++) s += Math.floor(Math.random() * 16).toString(16);
    return s;
  }

  /* Build an element; strings become text nodes (never HTML). */
  function h(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.slice(0, 2) === "on") node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, "");
      else node.setAttribute(key, String(value));
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  var SVG_NS = "http://www.w3.org/2000/svg";
  var ICONS = {
    chat: "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z",
    attach:
      "M16.5 6.5l-8 8a2 2 0 0 0 2.8 2.8l8.5-8.5a4 4 0 0 0-5.6-5.6L5.6 11.8a6 6 0 0 0 8.5 8.5l6.4-6.4",
    close: "M6 6l12 12M18 6L6 18",
    up:
      "M14 9V5a3 3 0 0 0-3-3l-4 9v11h11.28a2 2 0 0 0 2-1.7l1.38-9a2 2 0 0 0-2-2.3zM7 22H4a2 2 0 0 1-2-2v-7a2 2 0 0 1 2-2h3",
    down:
      "M10 15v4a3 3 0 0 0 3 3l4-9V2H5.72a2 2 0 0 0-2 1.7l-1.38 9a2 2 0 0 0 2 2.3zM17 2h2.67A2.31 2.31 0 0 1 22 4v7a2.31 2.31 0 0 1-2.33 2H17",
  };

  /* A decorative icon (hidden from screen readers: its button carries the label). */
  function icon(name) {
    var svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "22");
    svg.setAttribute("height", "22");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    svg.setAttribute("class", "cbw-icon cbw-icon-" + name);
    var path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.appendChild(path);
    return svg;
  }

  function safeLink(url) {
    try {
      var parsed = new URL(url);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (err) {
      return null;
    }
  }

  var store = {
    get: function () {
      try {
        var raw = window.localStorage.getItem(STORAGE_KEY);
        return raw ? JSON.parse(raw) : null;
      } catch (err) {
        return null;
      }
    },
    set: function (value) {
      try {
        if (value) window.localStorage.setItem(STORAGE_KEY, JSON.stringify(value));
        else window.localStorage.removeItem(STORAGE_KEY);
      } catch (err) {
        /* private mode: the conversation simply is not remembered */
      }
    },
    // Marks a conversation as already going on in this tab: no "resume?" question on reloads.
    tab: function (sessionId) {
      try {
        if (sessionId === undefined) return window.sessionStorage.getItem(STORAGE_KEY);
        if (sessionId) window.sessionStorage.setItem(STORAGE_KEY, sessionId);
        else window.sessionStorage.removeItem(STORAGE_KEY);
      } catch (err) {
        return null;
      }
      return null;
    },
  };

  // --- HTTP ------------------------------------------------------------------------------------

  /* Resolves {status, body, headers} for every HTTP answer; rejects only on network failure. */
  function api(method, path, options) {
    options = options || {};
    var headers = Object.assign({ Accept: "application/json" }, options.headers || {});
    if (options.auth === "widget" && WIDGET_KEY) headers["X-Widget-Key"] = WIDGET_KEY;
    if (options.auth === "token" && state.session) {
      headers.Authorization = "Bearer " + state.session.conversation_token;
    }
    var body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.form) {
      body = options.form;
    }
    return fetch(API_BASE + path, {
      method: method,
      headers: headers,
      body: body,
      mode: "cors",
      credentials: "omit",
    }).then(function (response) {
      if (options.blob && response.ok) {
        return response.blob().then(function (blob) {
          return { status: response.status, body: blob, headers: response.headers };
        });
      }
      return response.text().then(function (raw) {
        var parsed = null;
        try {
          parsed = raw ? JSON.parse(raw) : null;
        } catch (err) {
          parsed = null;
        }
        return { status: response.status, body: parsed, headers: response.headers };
      });
    });
  }

  function errorOf(reply) {
    var error = reply && reply.body && reply.body.error;
    return error && typeof error === "object" ? error : { code: "", message: "" };
  }

  function retryAfterSeconds(reply) {
    var header = reply.headers && reply.headers.get("Retry-After");
    var seconds = parseInt(header, 10);
    if (!isFinite(seconds)) {
      var details = errorOf(reply).details || {};
      seconds = parseInt(details.retry_after, 10);
    }
    return isFinite(seconds) && seconds > 0 ? seconds : 1;
  }

  /* What to tell the customer about a refused request (`upload`: a photo upload). */
  function describeFailure(reply, upload) {
    if (!reply) return t("network");
    if (reply.status === 429) {
      return t(upload ? "uploadRateLimited" : "rateLimited", { n: retryAfterSeconds(reply) });
    }
    var error = errorOf(reply);
    if (error.code === "IMAGE_TOO_LARGE" || (upload && reply.status === 413)) {
      var maxBytes = error.code === "IMAGE_TOO_LARGE" && error.details && error.details.max_bytes;
      var mb = maxBytes ? Math.round((maxBytes / 1048576) * 10) / 10 : MAX_IMAGE_MB || 10;
      return t("imageTooLarge", { mb: mb });
    }
    if (error.code === "IMAGE_TYPE_NOT_ALLOWED" || error.code === "IMAGE_TYPE_MISMATCH") {
      return t("imageType");
    }
    if (error.code === "ORIGIN_NOT_ALLOWED") return t("originRefused");
    return error.message || t("failed");
  }

  // --- state -----------------------------------------------------------------------------------

  function initialTransport() {
    var hasSse = "EventSource" in window;
    if (TRANSPORT === "polling") return "polling";
    if (TRANSPORT === "sse") return hasSse ? "sse" : "polling";
    if ("WebSocket" in window) return "websocket";
    return TRANSPORT === "auto" && hasSse ? "sse" : "polling";
  }

  var state = {
    config: null,
    session: null, // {session_id, conversation_token, websocket_url, turn_id}
    turns: {}, // turn id -> {id, lastId, text, done, el, textEl, error}
    transport: initialTransport(),
    ws: null,
    wsReady: false,
    wsFailures: 0,
    wsConnects: 0,
    sseConnects: 0,
    sseFailures: 0,
    wsTimer: null,
    wsLastFrame: 0,
    wsPinged: false,
    busyTurn: null,
    pendingImages: [], // [{image_id, url (blob)}]
    helpdesk: null, // null = not asked yet, false = not available, else the support answer
    blobUrls: [],
    open: false,
    started: false,
  };

  // --- UI ----------------------------------------------------------------------------------------

  var host = h("div", { class: "chat-widget-host", "data-chatbot": CHATBOT_ID });
  host.style.display = "none"; // until the stylesheet has loaded: no flash of unstyled widget
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var ui = {};

  function buildUi() {
    var css = h("link", { rel: "stylesheet", href: CSS_URL });
    var reveal = function () {
      host.style.display = "";
    };
    css.addEventListener("load", reveal);
    css.addEventListener("error", reveal);
    root.appendChild(css);

    var panelId = uid("panel");
    var titleId = uid("title");
    var inputId = uid("input");
    ui.launcher = h(
      "button",
      {
        type: "button",
        class: "cbw-launcher",
        "aria-expanded": "false",
        "aria-controls": panelId,
        "aria-label": t("open"),
        onclick: function () {
          setOpen(!state.open);
        },
      },
      [icon("chat"), h("span", { class: "cbw-launcher-text", text: t("launcher") })],
    );
    ui.title = h("h2", { id: titleId, class: "cbw-title", text: state.config.name || t("chat") });
    ui.close = h(
      "button",
      {
        type: "button",
        class: "cbw-icon-button cbw-close",
        "aria-label": t("close"),
        title: t("close"),
        onclick: function () {
          setOpen(false);
        },
      },
      [icon("close")],
    );
    ui.notice = h("div", { class: "cbw-notice", role: "status", "aria-live": "polite" });
    ui.alert = h("div", { class: "cbw-alert", role: "alert" });
    ui.log = h("div", {
      class: "cbw-log",
      role: "log",
      "aria-live": "polite",
      "aria-relevant": "additions text",
      "aria-label": t("log"),
      tabindex: "0",
    });
    ui.resume = h("div", { class: "cbw-resume", hidden: true }, [
      h("p", { class: "cbw-resume-question", text: t("resumeQuestion") }),
      h("div", { class: "cbw-row" }, [
        (ui.resumeYes = h("button", {
          type: "button",
          class: "cbw-button cbw-primary",
          text: t("resumeYes"),
          onclick: onResumeYes,
        })),
        (ui.resumeNo = h("button", {
          type: "button",
          class: "cbw-button",
          text: t("resumeNo"),
          onclick: onResumeNo,
        })),
      ]),
    ]);
    ui.previews = h("div", { class: "cbw-previews" });
    ui.file = h("input", {
      type: "file",
      class: "cbw-file",
      accept: IMAGE_TYPES.join(","),
      tabindex: "-1",
      "aria-hidden": "true",
      onchange: onFileChosen,
    });
    ui.attach = h(
      "button",
      {
        type: "button",
        class: "cbw-icon-button cbw-attach",
        "aria-label": t("attach"),
        title: t("attach"),
        hidden: !state.config.image_enabled,
        onclick: function () {
          ui.file.click();
        },
      },
      [icon("attach")],
    );
    ui.input = h("textarea", {
      id: inputId,
      class: "cbw-input",
      rows: "1",
      maxlength: "4000",
      placeholder: t("placeholder"),
      onkeydown: function (event) {
        if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
          event.preventDefault();
          onSubmit();
        }
      },
      oninput: customerTyping,
    });
    ui.send = h("button", {
      type: "submit",
      class: "cbw-button cbw-primary cbw-send",
      text: t("send"),
    });
    ui.stop = h("button", {
      type: "button",
      class: "cbw-button cbw-stop",
      text: t("stop"),
      hidden: true,
      onclick: onStop,
    });
    ui.form = h(
      "form",
      {
        class: "cbw-compose",
        onsubmit: function (event) {
          event.preventDefault();
          onSubmit();
        },
      },
      [
        h("label", { for: inputId, class: "cbw-sr-only", text: t("inputLabel") }),
        ui.previews,
        h("div", { class: "cbw-row cbw-compose-row" }, [
          ui.attach,
          ui.file,
          ui.input,
          ui.stop,
          ui.send,
        ]),
      ],
    );
    ui.helpButton = h("button", {
      type: "button",
      class: "cbw-link-button",
      text: t("help"),
      onclick: openHelp,
    });
    ui.rateButton = h("button", {
      type: "button",
      class: "cbw-link-button",
      text: t("rate"),
      hidden: true,
      onclick: openRating,
    });
    ui.footer = h("div", { class: "cbw-footer" }, [ui.helpButton, ui.rateButton]);
    ui.chatView = h("div", { class: "cbw-view cbw-chat-view" }, [
      ui.log,
      ui.resume,
      ui.alert,
      ui.form,
      ui.footer,
    ]);
    ui.sideView = h("div", { class: "cbw-view cbw-side-view", hidden: true });
    ui.panel = h(
      "section",
      {
        id: panelId,
        class: "cbw-panel",
        role: "dialog",
        "aria-labelledby": titleId,
        hidden: true,
        onkeydown: function (event) {
          if (event.key === "Escape") {
            event.stopPropagation();
            setOpen(false);
          }
        },
      },
      [
        h("header", { class: "cbw-header" }, [ui.title, ui.close]),
        ui.notice,
        ui.chatView,
        ui.sideView,
      ],
    );
    ui.container = h("div", { class: "cbw cbw-" + POSITION, lang: state.language }, [
      ui.panel,
      ui.launcher,
    ]);
    if (ACCENT) ui.container.style.setProperty("--cbw-accent", ACCENT);
    root.appendChild(ui.container);
    document.body.appendChild(host);
  }

  function setOpen(open) {
    state.open = open;
    ui.panel.hidden = !open;
    ui.launcher.setAttribute("aria-expanded", open ? "true" : "false");
    ui.launcher.setAttribute("aria-label", open ? t("close") : t("open"));
    ui.container.classList.toggle("cbw-is-open", open);
    if (open) {
      startIfNeeded();
      focusFirst();
      scrollToEnd();
    } else {
      ui.launcher.focus();
    }
  }

  function focusFirst() {
    if (!ui.sideView.hidden) {
      var first = ui.sideView.querySelector("input, textarea, button, a[href]");
      if (first) first.focus();
    } else if (!ui.resume.hidden) {
      ui.resumeYes.focus();
    } else {
      ui.input.focus();
    }
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function notice(text) {
    ui.notice.textContent = text || "";
    ui.notice.hidden = !text;
  }

  function alertText(text) {
    ui.alert.textContent = text || "";
    ui.alert.hidden = !text;
  }

  function addBubble(role, text, extraClass) {
    var textEl = h("div", { class: "cbw-text", text: text || "" });
    var label = role === "user" ? t("you") : state.config.name || t("chat");
    if (role === "agent") label = (extraClass && extraClass.name) || t("person");
    if (extraClass && typeof extraClass === "object") extraClass = extraClass.className;
    var el = h("div", { class: "cbw-msg cbw-" + role + (extraClass ? " " + extraClass : "") }, [
      h("span", { class: "cbw-sr-only", text: label + ": " }),
      textEl,
    ]);
    ui.log.appendChild(el);
    scrollToEnd();
    return { el: el, textEl: textEl };
  }

  function addNote(text, kind) {
    var el = h("div", { class: "cbw-note cbw-note-" + (kind || "info"), text: text });
    ui.log.appendChild(el);
    scrollToEnd();
    return el;
  }

  function setBusy(turnId) {
    state.busyTurn = turnId;
    ui.send.disabled = !!turnId;
    ui.stop.hidden = !turnId;
    ui.log.setAttribute("aria-busy", turnId ? "true" : "false");
  }

  // --- sessions ----------------------------------------------------------------------------------

  function sessionSave(session) {
    state.session = session;
    store.set(session);
    store.tab(session ? session.session_id : null);
  }

  function sessionFromReply(body) {
    var previous = state.session || {};
    var sameConversation = previous.session_id === body.session_id;
    return {
      session_id: body.session_id,
      conversation_token: body.conversation_token,
      websocket_url: body.websocket_url || (sameConversation ? previous.websocket_url : null),
      turn_id: sameConversation ? previous.turn_id || null : null,
      human_turn: sameConversation ? previous.human_turn || null : null,
    };
  }

  function forgetSession() {
    closeSocket();
    state.session = null;
    state.helpdesk = null;
    store.set(null);
    store.tab(null);
    ui.rateButton.hidden = true;
    Object.keys(state.turns).forEach(function (id) {
      state.turns[id].done = true;
    });
    setBusy(null);
  }

  function startIfNeeded() {
    if (state.started) return;
    state.started = true;
    if (state.config.greeting) addBubble("bot", state.config.greeting, "cbw-greeting");
    var stored = store.get();
    if (stored && stored.session_id && stored.conversation_token) {
      if (store.tab() === stored.session_id) {
        resumeSession(stored, false); // a reload of the page this conversation runs in
      } else {
        state.offeredSession = stored;
        ui.resume.hidden = false;
        ui.form.hidden = true;
        ui.footer.hidden = true;
      }
    }
  }

  function onResumeYes() {
    var stored = state.offeredSession;
    hideResumePrompt();
    if (stored) resumeSession(stored, true);
  }

  function onResumeNo() {
    hideResumePrompt();
    forgetSession();
  }

  function hideResumePrompt() {
    ui.resume.hidden = true;
    ui.form.hidden = false;
    ui.footer.hidden = false;
    ui.input.focus();
  }

  function resumeSession(stored, asked) {
    state.session = stored;
    var path = "/api/sessions/" + encodeURIComponent(stored.session_id) + "/resume";
    return api("POST", path, { auth: "token" }).then(
      function (reply) {
        if (reply.status === 200 && reply.body) {
          sessionSave(stored);
          renderHistory(reply.body.history || [], stored.turn_id);
          detectHelpdesk();
        } else {
          forgetSession();
          if (asked) addNote(t("resumeFailed"));
        }
      },
      function () {
        // Offline now: keep what is stored so the next load can ask again.
        state.session = null;
        alertText(t("network"));
      },
    );
  }

  /* The transcript as it was shown live: each question's answer with the error or the
     "stopped" note under it (a customer's message carries its turn's outcome: `turn`). */
  function renderHistory(messages, pendingTurnId) {
    var outcomeOfAnswer = {}; // stored answer id -> the turn that said it
    messages.forEach(function (message) {
      var turn = message.role === "user" && message.turn;
      if (turn && turn.answer_message_id) outcomeOfAnswer[turn.answer_message_id] = turn;
    });
    var unfinished = null;
    messages.forEach(function (message) {
      if (message.role === "user") {
        var bubble = addBubble("user", message.content);
        var images = (message.metadata && message.metadata.images) || [];
        images.forEach(function (image) {
          if (image && image.image_id) showThumbnail(bubble.el, image.image_id);
        });
        var turn = message.turn;
        if (turn && (turn.status === "pending" || turn.status === "running")) {
          unfinished = turn.turn_id;
        } else if (turn && !turn.answer_message_id && turn.status !== "completed") {
          // Nothing was said before it failed or was stopped: the empty answer and its note.
          var empty = addBubble("bot", "");
          showOutcome(empty.el, turn.status, turn.error && turn.error.message, false);
        }
      } else if (message.role === "agent") {
        var name = (message.metadata && message.metadata.agent && message.metadata.agent.name) || "";
        addAgentBubble(name, message.content);
      } else if (message.role === "assistant") {
        var answer = addBubble("bot", message.content);
        var said = outcomeOfAnswer[message.message_id];
        if (said) {
          showOutcome(answer.el, said.status, said.error && said.error.message, true);
        } else if (message.metadata && message.metadata.incomplete) {
          answer.el.appendChild(h("div", { class: "cbw-meta", text: t("incomplete") }));
        }
        var meta = message.metadata || {};
        if ((!said || said.status === "completed") && !meta.incomplete) {
          answer.el.appendChild(feedbackControl(message.message_id, meta.feedback));
        }
      }
    });
    var last = messages[messages.length - 1];
    var human = state.session && state.session.human_turn;
    if (last && last.role === "user" && last.turn) {
      // A reload mid-answer: follow the unfinished turn from its start.
      if (unfinished === last.turn.turn_id) followTurn(unfinished);
    } else if (pendingTurnId && last && last.role === "user" && !(human && human.id === pendingTurnId)) {
      followTurn(pendingTurnId); // a server without `turn` in its history
    }
    if (human && !state.turns[human.id]) {
      // A reload while a person answers: go on from the last event shown (the history above
      // already holds their messages).
      followTurn(human.id, { human: true, after: human.last_id || 0 });
    }
  }

  // --- sending -------------------------------------------------------------------------------

  function onSubmit() {
    if (state.busyTurn || state.sending) return;
    var text = ui.input.value.trim();
    var images = state.pendingImages.slice();
    if (!text && !images.length) return;
    sendMessage(text || t("photoOnly"), images, false);
  }

  function sendMessage(text, images, isRetry) {
    var body = { chatbot_id: CHATBOT_ID, message_text: text };
    if (USER_ID) body.user_id = USER_ID;
    if (images.length) {
      body.image_ids = images.map(function (image) {
        return image.image_id;
      });
    }
    var auth = "widget";
    if (state.session) {
      body.session_id = state.session.session_id;
      auth = "token";
    }
    state.sending = true;
    ui.send.disabled = true;
    alertText("");
    return api("POST", "/api/process-message", {
      json: body,
      auth: auth,
      headers: { "Idempotency-Key": randomKey() },
    }).then(
      function (reply) {
        state.sending = false;
        ui.send.disabled = !!state.busyTurn;
        if (reply.status === 200 && reply.body && reply.body.turn_id) {
          var hadSession = !!state.session;
          var session = sessionFromReply(reply.body);
          session.turn_id = reply.body.turn_id;
          sessionSave(session);
          ui.input.value = "";
          clearPreviews();
          var bubble = addBubble("user", text);
          images.forEach(function (image) {
            showThumbnail(bubble.el, image.image_id, image.url);
          });
          followTurn(reply.body.turn_id);
          if (!hadSession) detectHelpdesk();
          return;
        }
        var code = errorOf(reply).code;
        var stale = code === "CONVERSATION_NOT_FOUND" || code === "CONVERSATION_CLOSED";
        if (state.session && stale && !isRetry) {
          // An expired token or an ended conversation: start a new one with this message.
          forgetSession();
          clearPreviews();
          return sendMessage(text, [], true);
        }
        alertText(describeFailure(reply));
      },
      function () {
        state.sending = false;
        ui.send.disabled = !!state.busyTurn;
        alertText(t("network"));
      },
    );
  }

  function onStop() {
    var turnId = state.busyTurn;
    if (!turnId || !state.session) return;
    api("POST", "/api/turns/" + encodeURIComponent(turnId) + "/cancel", { auth: "token" }).catch(
      function () {
        alertText(t("network"));
      },
    );
  }

  // --- following a turn --------------------------------------------------------------------------

  /* options.human: a person's turn (docs/inbox.md): no answer bubble, the customer may write
     meanwhile; options.after: the last event already shown. */
  function followTurn(turnId, options) {
    options = options || {};
    if (state.turns[turnId]) return;
    var bubble = { el: null, textEl: null };
    if (!options.human) {
      bubble = addBubble("bot", "", "cbw-streaming");
      bubble.el.setAttribute("data-turn-id", turnId);
      bubble.textEl.appendChild(h("span", { class: "cbw-typing", text: t("writing") }));
    }
    state.turns[turnId] = {
      id: turnId,
      lastId: options.after || 0,
      text: "",
      done: false,
      el: bubble.el,
      textEl: bubble.textEl,
      error: null,
      polling: false,
      human: !!options.human,
    };
    if (options.human) rememberHuman(state.turns[turnId]);
    else setBusy(turnId);
    if (state.transport === "polling") pollTurn(turnId);
    else if (state.transport === "sse") streamTurn(turnId);
    else if (state.ws && state.wsReady) socketResume(state.turns[turnId]);
    else ensureSocket();
  }

  function unfinishedTurns() {
    return Object.keys(state.turns)
      .map(function (id) {
        return state.turns[id];
      })
      .filter(function (turn) {
        return !turn.done;
      });
  }

  /* Apply one event exactly once, in order: ids are 1, 2, 3… per turn. */
  function handleEvent(turnId, env) {
    var turn = state.turns[turnId];
    if (!turn || turn.done || typeof env.id !== "number") return;
    if (env.id <= turn.lastId) return; // a replay of something already shown
    if (env.id > turn.lastId + 1) {
      // Out of order: ask again from the last event shown (never show a gap).
      if (state.transport !== "websocket") return;
      socketResume(turn);
      return;
    }
    turn.lastId = env.id;
    var data = env.data || {};
    if (env.event === "start" && data.kind === "human" && !turn.human) {
      // A rule handed this message to a person: no answer bubble, and the customer may write.
      if (turn.el) turn.el.remove();
      turn.el = turn.textEl = null;
      turn.human = true;
      if (state.busyTurn === turn.id) setBusy(null);
    }
    if (turn.human) {
      handlePersonEvent(turn, env.event, data);
      return;
    }
    switch (env.event) {
      case "token":
        turn.text += typeof data.text === "string" ? data.text : "";
        turn.textEl.textContent = turn.text;
        scrollToEnd();
        break;
      case "order":
        if (data && data.order_number) turn.el.appendChild(orderCard(data));
        break;
      case "tool_call":
        // A step the bot is taking ("Looking up your order…"), ticked off by its tool_result.
        turn.steps = turn.steps || {};
        turn.steps[data.call_id] = h("div", {
          class: "cbw-step",
          text: typeof data.label === "string" && data.label ? data.label : String(data.tool || ""),
        });
        turn.el.insertBefore(turn.steps[data.call_id], turn.textEl);
        scrollToEnd();
        break;
      case "tool_result":
        if (turn.steps && turn.steps[data.call_id]) {
          turn.steps[data.call_id].classList.add(data.ok ? "cbw-step-done" : "cbw-step-failed");
        }
        break;
      case "source_documents":
        // What the answer was built from (docs/knowledge.md); shown under it when it ends.
        turn.sources = Array.isArray(data.documents) ? data.documents : [];
        break;
      case "error":
        turn.error = typeof data.message === "string" && data.message ? data.message : t("failed");
        break;
      case "end":
        finishTurn(turn, data);
        break;
      default:
        break; // start, metadata: nothing to show
    }
  }

  function finishTurn(turn, data) {
    turn.done = true;
    if (turn.human) {
      showPersonTyping(null);
      if (state.session && state.session.human_turn) {
        state.session.human_turn = null;
        store.set(state.session);
      }
      if (state.busyTurn === turn.id) setBusy(null);
      return;
    }
    turn.el.classList.remove("cbw-streaming");
    if (!turn.text) turn.textEl.textContent = "";
    showOutcome(turn.el, data.status || "completed", turn.error, !!turn.text);
    var sources = turn.text && turn.sources ? sourcesList(turn.sources) : null;
    if (sources) turn.el.appendChild(sources);
    if (turn.text && (data.status || "completed") === "completed" && data.message_id) {
      turn.el.appendChild(feedbackControl(data.message_id, null));
    }
    if (state.session && state.session.turn_id === turn.id) {
      state.session.turn_id = null;
      store.set(state.session);
    }
    if (state.busyTurn === turn.id) setBusy(null);
    scrollToEnd();
  }

  // --- a person answers (docs/inbox.md) -------------------------------------------------------

  function rememberHuman(turn) {
    if (!state.session) return;
    state.session.human_turn = { id: turn.id, last_id: turn.lastId };
    store.set(state.session);
  }

  function addAgentBubble(name, text) {
    var bubble = addBubble("agent", "", { name: name, className: "" });
    bubble.el.insertBefore(h("div", { class: "cbw-agent-name", text: name || t("person") }), bubble.textEl);
    bubble.textEl.textContent = text;
    return bubble;
  }

  function showPersonTyping(name) {
    if (state.personTyping) {
      state.personTyping.remove();
      state.personTyping = null;
    }
    if (name !== null) {
      state.personTyping = addNote(t("personTyping", { name: name || t("person") }), "typing");
    }
  }

  function handlePersonEvent(turn, kind, data) {
    var agent = (data.agent && data.agent.name) || t("person");
    switch (kind) {
      case "agent_waiting":
        addNote(t("waitingForPerson", { n: data.usual_wait_minutes || 5 }));
        break;
      case "agent_joined":
        addNote(t("personJoined", { name: agent }), "success");
        break;
      case "agent_message":
        showPersonTyping(null);
        addAgentBubble(agent, typeof data.text === "string" ? data.text : "");
        break;
      case "typing":
        if (data.who === "agent") showPersonTyping(data.typing ? agent : null);
        break;
      case "agent_left":
        showPersonTyping(null);
        addNote(
          t(
            data.next === "resolved"
              ? "personLeftResolved"
              : data.next === "agent"
                ? "personLeftAgent"
                : "personLeftBot",
            { name: agent },
          ),
        );
        break;
      case "end":
        finishTurn(turn, data);
        return;
      default:
        break; // start; customer_message: the customer's own message, already shown
    }
    rememberHuman(turn);
  }

  function humanTurnOpen() {
    return unfinishedTurns().filter(function (turn) {
      return turn.human;
    })[0];
  }

  /* The customer's typing, to the person answering: at most one "typing" per 3 s, "stopped"
     after 4 s without a key. */
  function customerTyping() {
    if (!state.session || !humanTurnOpen()) return;
    var path = "/api/sessions/" + encodeURIComponent(state.session.session_id) + "/typing";
    var now = Date.now();
    if (now - (state.typingSentAt || 0) > 3000) {
      state.typingSentAt = now;
      api("POST", path, { json: { typing: true }, auth: "token" }).catch(function () {});
    }
    clearTimeout(state.typingTimer);
    state.typingTimer = setTimeout(function () {
      state.typingSentAt = 0;
      api("POST", path, { json: { typing: false }, auth: "token" }).catch(function () {});
    }, 4000);
  }

  /* "Talk to a person": a live chat when one can answer now, else today's helpdesk path. */
  function askForPerson(opener, support) {
    return ensureSession()
      .then(function () {
        var path = "/api/sessions/" + encodeURIComponent(state.session.session_id) + "/person";
        return api("POST", path, { json: {}, auth: "token" });
      })
      .then(function (reply) {
        if (reply.status === 200 && reply.body && reply.body.mode === "live") {
          closeSide(opener);
          followTurn(reply.body.turn_id, { human: true });
          return;
        }
        if (reply.status === 200 && support && support.offer === "live") {
          openHandoff(opener); // nobody in the inbox: a ticket, as before
          return;
        }
        addNote(reply.status === 200 ? t("noPersonNow") : describeFailure(reply));
      })
      .catch(function () {
        alertText(t("network"));
      });
  }

  /* How an answer ended, under it: the same live and when the history is shown again. */
  function showOutcome(el, status, error, hasText) {
    el.setAttribute("data-status", status);
    if (status === "failed") {
      el.appendChild(h("div", { class: "cbw-error", text: error || t("failed") }));
    } else if (status === "cancelled") {
      el.appendChild(h("div", { class: "cbw-meta", text: t("cancelled") }));
    } else if (error) {
      el.appendChild(h("div", { class: "cbw-error", text: error }));
    }
    if (!hasText && status !== "failed" && status !== "cancelled") el.classList.add("cbw-empty");
  }

  // --- thumbs up / down on one answer (docs/quality.md) -----------------------------------------

  /* Two toggle buttons under a finished answer; the chosen one is pressed (also after a reload:
     the history carries each answer's vote). A second vote replaces the first. */
  function feedbackControl(messageId, chosen) {
    var group = h("div", {
      class: "cbw-feedback",
      role: "group",
      "aria-label": t("feedbackAsk"),
    });
    var buttons = {};
    ["up", "down"].forEach(function (value) {
      buttons[value] = h(
        "button",
        {
          type: "button",
          class: "cbw-thumb cbw-thumb-" + value,
          "aria-label": t(value === "up" ? "helpful" : "notHelpful"),
          title: t(value === "up" ? "helpful" : "notHelpful"),
          "aria-pressed": "false",
          onclick: function () {
            sendFeedback(messageId, value, buttons, group);
          },
        },
        [icon(value)]
      );
      group.appendChild(buttons[value]);
    });
    showFeedback(buttons, chosen);
    return group;
  }

  function showFeedback(buttons, chosen) {
    Object.keys(buttons).forEach(function (value) {
      buttons[value].setAttribute("aria-pressed", value === chosen ? "true" : "false");
    });
  }

  function sendFeedback(messageId, value, buttons, group) {
    if (!state.session || group.getAttribute("aria-busy") === "true") return;
    var before = null;
    if (buttons.up.getAttribute("aria-pressed") === "true") before = "up";
    if (buttons.down.getAttribute("aria-pressed") === "true") before = "down";
    if (before === value) return;
    showFeedback(buttons, value);
    group.setAttribute("aria-busy", "true");
    var path =
      "/api/sessions/" +
      encodeURIComponent(state.session.session_id) +
      "/messages/" +
      encodeURIComponent(messageId) +
      "/feedback";
    api("POST", path, { json: { value: value }, auth: "token" })
      .then(function (reply) {
        if (reply.status !== 200) throw new Error("feedback " + reply.status);
      })
      .catch(function () {
        showFeedback(buttons, before);
        alertText(t("feedbackFailed"));
      })
      .then(function () {
        group.removeAttribute("aria-busy");
      });
  }

  function failTurn(turn, message) {
    turn.error = message;
    finishTurn(turn, { status: "failed" });
  }

  // --- WebSocket ---------------------------------------------------------------------------------

  function socketUrl() {
    var base = state.session.websocket_url;
    if (!base) {
      base =
        API_BASE.replace(/^http/, "ws") +
        "/ws/conversations/" +
        encodeURIComponent(state.session.session_id) +
        "/";
    }
    // Tokens are URL-safe (base64url and ":"); ":" is left as it is for servers that read the
    // query string without decoding it.
    var token = encodeURIComponent(state.session.conversation_token).replace(/%3A/gi, ":");
    return base + (base.indexOf("?") >= 0 ? "&" : "?") + "token=" + token;
  }

  function ensureSocket() {
    if (state.ws || state.wsTimer || !state.session || state.transport !== "websocket") return;
    var sock;
    try {
      sock = new WebSocket(socketUrl());
    } catch (err) {
      onSocketClosed(null, 1006);
      return;
    }
    state.ws = sock;
    state.wsReady = false;
    state.wsConnects += 1;
    state.wsLastFrame = Date.now();
    state.wsPinged = false;
    sock.onmessage = function (message) {
      if (sock !== state.ws) return;
      state.wsLastFrame = Date.now();
      state.wsPinged = false;
      var frame;
      try {
        frame = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      onFrame(frame);
    };
    sock.onclose = function (event) {
      if (sock !== state.ws) return; // closed on purpose
      onSocketClosed(sock, event.code);
    };
  }

  function closeSocket() {
    var sock = state.ws;
    state.ws = null;
    state.wsReady = false;
    if (state.wsTimer) {
      clearTimeout(state.wsTimer);
      state.wsTimer = null;
    }
    if (sock) {
      try {
        sock.close(1000);
      } catch (err) {
        /* already closed */
      }
    }
  }

  function socketSend(payload) {
    if (state.ws && state.wsReady) state.ws.send(JSON.stringify(payload));
  }

  function socketResume(turn) {
    socketSend({ type: "resume", turn_id: turn.id, last_event_id: turn.lastId });
  }

  function onFrame(frame) {
    if (frame.type === "ready") {
      state.wsReady = true;
      state.wsFailures = 0;
      notice("");
      unfinishedTurns().forEach(socketResume);
    } else if (frame.type === "event") {
      handleEvent(frame.turn_id, frame);
    } else if (frame.type === "error") {
      var error = frame.error || {};
      if (error.code === "RESUME_POINT_GONE" || error.code === "TURN_NOT_FOUND") {
        // The turn's events were cleaned up: what was said is in the history.
        unfinishedTurns().forEach(function (turn) {
          reloadAnswer(turn);
        });
      } else if (error.code && error.code !== "CONVERSATION_NOT_FOUND") {
        alertText(error.message || t("failed"));
      }
    }
  }

  function onSocketClosed(sock, code) {
    state.ws = null;
    state.wsReady = false;
    if (code === 4404) {
      // The token is no longer valid (expired, or the conversation was deleted).
      var open = unfinishedTurns();
      open.forEach(function (turn) {
        failTurn(turn, t("gone"));
      });
      forgetSession();
      if (!open.length) addNote(t("gone"));
      return;
    }
    if (code === 4403) {
      unfinishedTurns().forEach(function (turn) {
        failTurn(turn, t("originRefused"));
      });
      return;
    }
    state.wsFailures += 1;
    if (!unfinishedTurns().length) return; // reconnect when the next answer needs it
    if (TRANSPORT === "auto" && state.wsFailures >= WS_MAX_FAILURES) {
      if ("EventSource" in window) switchToEventStreams();
      else switchToPolling();
      return;
    }
    notice(t("reconnecting"));
    var delay = Math.min(WS_BACKOFF_MS * Math.pow(2, state.wsFailures - 1), WS_BACKOFF_MAX_MS);
    delay = Math.round(delay * (0.8 + Math.random() * 0.4));
    state.wsTimer = setTimeout(function () {
      state.wsTimer = null;
      ensureSocket();
    }, delay);
  }

  function switchToEventStreams() {
    closeSocket();
    state.transport = "sse";
    unfinishedTurns().forEach(function (turn) {
      streamTurn(turn.id);
    });
  }

  function switchToPolling() {
    closeSocket();
    unfinishedTurns().forEach(function (turn) {
      if (turn.stream) turn.stream.close();
      turn.stream = null;
    });
    state.transport = "polling";
    notice(t("polling"));
    unfinishedTurns().forEach(function (turn) {
      pollTurn(turn.id);
    });
  }

  // A socket can die without a close event (a laptop lid, a proxy): while an answer is due,
  // silence is answered with a ping, and longer silence with a reconnect.
  setInterval(function () {
    if (!state.ws || !state.wsReady || !unfinishedTurns().length) return;
    var silence = Date.now() - state.wsLastFrame;
    if (silence > WS_SILENCE_DROP_MS) {
      var sock = state.ws;
      onSocketClosed(sock, 1006);
      try {
        sock.close();
      } catch (err) {
        /* ignore */
      }
    } else if (silence > WS_SILENCE_PING_MS && !state.wsPinged) {
      state.wsPinged = true;
      socketSend({ type: "ping" });
    }
  }, 2500);

  // --- Server-Sent Events ------------------------------------------------------------------------

  /* Follow a turn with EventSource. It reconnects by itself after a drop, sending Last-Event-ID.
   * EventSource cannot tell why a stream was refused (404, 410 …), so a turn whose stream fails
   * is handed to polling, which reads the error envelope and acts on it. */
  function streamTurn(turnId) {
    var turn = state.turns[turnId];
    if (!turn || turn.done || turn.stream || turn.polling || !state.session) return;
    var url =
      API_BASE +
      "/api/stream-events/" +
      encodeURIComponent(turn.id) +
      "/sse?token=" +
      encodeURIComponent(state.session.conversation_token) +
      "&last_event_id=" +
      turn.lastId;
    var source;
    try {
      source = new EventSource(url);
    } catch (err) {
      switchToPolling();
      return;
    }
    turn.stream = source;
    var opened = false;
    var everOpened = false;
    function close() {
      source.close();
      if (turn.stream === source) turn.stream = null;
    }
    source.onopen = function () {
      opened = everOpened = true;
      state.sseConnects += 1;
      state.sseFailures = 0;
    };
    SSE_EVENTS.forEach(function (kind) {
      source.addEventListener(kind, function (message) {
        var env;
        try {
          env = JSON.parse(message.data);
        } catch (err) {
          return;
        }
        handleEvent(turn.id, env);
        if (turn.done) close();
      });
    });
    source.onerror = function () {
      if (turn.done) return close();
      var refused = source.readyState === 2; // an answer other than 200 (404, 410 …)
      if (opened && !refused) {
        opened = false; // dropped: EventSource reconnects by itself, sending Last-Event-ID
        return;
      }
      close();
      if (refused && everOpened) {
        pollTurn(turn.id); // polling reads why the reconnect was refused, and acts on it
        return;
      }
      // Blocked on the way, or refused from the start: try again, then leave it to polling,
      // which gets through or says why.
      state.sseFailures += 1;
      if (TRANSPORT !== "sse" && state.sseFailures >= SSE_MAX_FAILURES) {
        switchToPolling();
      } else if (state.sseFailures >= SSE_MAX_FAILURES) {
        pollTurn(turn.id);
      } else {
        setTimeout(function () {
          if (state.transport === "sse") streamTurn(turn.id);
          else pollTurn(turn.id);
        }, backoff(state.sseFailures));
      }
    };
  }

  // --- polling -----------------------------------------------------------------------------------

  function pollTurn(turnId) {
    var turn = state.turns[turnId];
    if (!turn || turn.done || turn.polling) return;
    turn.polling = true;
    var failures = 0;
    function again(ms) {
      setTimeout(step, ms);
    }
    function step() {
      if (turn.done || !state.session) {
        turn.polling = false;
        return;
      }
      var path = "/api/stream-events/" + encodeURIComponent(turn.id) + "?after=" + turn.lastId;
      api("GET", path, { auth: "token" }).then(
        function (reply) {
          if (reply.status === 200 && reply.body) {
            failures = 0;
            (reply.body.events || []).forEach(function (env) {
              handleEvent(turn.id, env);
            });
            if (turn.done) {
              turn.polling = false;
              return;
            }
            again(reply.body.has_more ? 0 : POLL_INTERVAL_MS);
          } else if (reply.status === 429 || reply.status >= 500) {
            failures += 1;
            again(reply.status === 429 ? retryAfterSeconds(reply) * 1000 : backoff(failures));
          } else if (errorOf(reply).code === "RESUME_POINT_GONE" || reply.status === 410) {
            turn.polling = false;
            reloadAnswer(turn);
          } else {
            turn.polling = false;
            failTurn(turn, describeFailure(reply));
          }
        },
        function () {
          failures += 1;
          notice(t("reconnecting"));
          again(backoff(failures));
        },
      );
    }
    step();
  }

  function backoff(failures) {
    return Math.min(1000 * Math.pow(2, failures - 1), POLL_BACKOFF_MAX_MS);
  }

  /* The events are gone (retention): show the stored answer from the history instead. */
  function reloadAnswer(turn) {
    var path =
      "/api/sessions/" + encodeURIComponent(state.session.session_id) + "/history?limit=500";
    api("GET", path, { auth: "token" }).then(
      function (reply) {
        var messages = (reply.body && reply.body.messages) || [];
        var asked = messages.filter(function (message) {
          return message.role === "user" && message.turn && message.turn.turn_id === turn.id;
        })[0];
        var outcome = asked && asked.turn;
        if (outcome && ["completed", "failed", "cancelled"].indexOf(outcome.status) >= 0) {
          // The stored answer and the error the stream carried, as they were shown live.
          var answer = messages.filter(function (message) {
            return message.message_id === outcome.answer_message_id;
          })[0];
          turn.text = answer ? answer.content : "";
          turn.textEl.textContent = turn.text;
          turn.error = (outcome.error && outcome.error.message) || null;
          finishTurn(turn, { status: outcome.status });
          return;
        }
        var last = messages[messages.length - 1];
        if (last && last.role === "assistant") {
          turn.text = last.content;
          turn.textEl.textContent = last.content;
          finishTurn(turn, { status: "completed" });
        } else {
          failTurn(turn, t("failed"));
        }
      },
      function () {
        failTurn(turn, t("network"));
      },
    );
  }

  // --- images ------------------------------------------------------------------------------------

  function onFileChosen() {
    var file = ui.file.files && ui.file.files[0];
    ui.file.value = "";
    if (!file) return;
    alertText("");
    if (file.type && IMAGE_TYPES.indexOf(file.type) < 0 && file.type !== "image/jpg") {
      alertText(t("imageType"));
      return;
    }
    if (MAX_IMAGE_MB > 0 && file.size > MAX_IMAGE_MB * 1048576) {
      alertText(t("imageTooLarge", { mb: MAX_IMAGE_MB }));
      return;
    }
    var form = new FormData();
    form.append("chatbot_id", CHATBOT_ID);
    form.append("image", file, file.name || "image");
    if (USER_ID) form.append("user_id", USER_ID);
    var auth = "widget";
    if (state.session) {
      form.append("session_id", state.session.session_id);
      auth = "token";
    }
    notice(t("uploading"));
    ui.attach.disabled = true;
    api("POST", "/api/upload-image", { form: form, auth: auth }).then(
      function (reply) {
        notice("");
        ui.attach.disabled = false;
        if (reply.status === 200 && reply.body && reply.body.image_id) {
          var hadSession = !!state.session;
          sessionSave(sessionFromReply(reply.body));
          if (!hadSession) detectHelpdesk();
          addPreview(reply.body.image_id);
          return;
        }
        alertText(describeFailure(reply, true));
      },
      function () {
        notice("");
        ui.attach.disabled = false;
        alertText(t("network"));
      },
    );
  }

  /* The thumbnail needs the token, so it is fetched and shown from a blob: URL. */
  function thumbnailUrl(imageId) {
    var path = "/api/images/" + encodeURIComponent(imageId) + "?thumbnail=1";
    return api("GET", path, { auth: "token", blob: true }).then(function (reply) {
      if (reply.status !== 200) return null;
      var url = URL.createObjectURL(reply.body);
      state.blobUrls.push(url);
      return url;
    });
  }

  function addPreview(imageId) {
    var entry = { image_id: imageId, url: null };
    state.pendingImages.push(entry);
    var img = h("img", { class: "cbw-thumb", alt: t("yourPhoto") });
    var item = h("div", { class: "cbw-preview" }, [
      img,
      h(
        "button",
        {
          type: "button",
          class: "cbw-icon-button cbw-remove",
          "aria-label": t("removePhoto"),
          title: t("removePhoto"),
          onclick: function () {
            state.pendingImages = state.pendingImages.filter(function (e) {
              return e !== entry;
            });
            item.remove();
            ui.input.focus();
          },
        },
        [icon("close")],
      ),
    ]);
    ui.previews.appendChild(item);
    thumbnailUrl(imageId).then(
      function (url) {
        if (url) {
          entry.url = url;
          img.src = url;
        }
      },
      function () {},
    );
  }

  function clearPreviews() {
    state.pendingImages = [];
    ui.previews.textContent = "";
  }

  function showThumbnail(container, imageId, knownUrl) {
    var img = h("img", { class: "cbw-thumb", alt: t("yourPhoto") });
    container.appendChild(img);
    if (knownUrl) {
      img.src = knownUrl;
      return;
    }
    thumbnailUrl(imageId).then(
      function (url) {
        if (url) img.src = url;
        else img.remove();
      },
      function () {
        img.remove();
      },
    );
  }

  // --- order cards -------------------------------------------------------------------------------

  /* The sources of an answer: titles, linked only where the link is http(s); at most five. */
  function sourcesList(documents) {
    var seen = {};
    var items = [];
    documents.forEach(function (doc) {
      var meta = doc && typeof doc.metadata === "object" && doc.metadata ? doc.metadata : {};
      var title = typeof meta.title === "string" ? meta.title.trim() : "";
      var link = typeof meta.link === "string" && /^https?:\/\//i.test(meta.link) ? meta.link : "";
      if (!title || seen[title + "\n" + link] || items.length >= 5) return;
      seen[title + "\n" + link] = true;
      var label = link
        ? h("a", { href: link, target: "_blank", rel: "noopener noreferrer", text: title })
        : title;
      items.push(h("li", {}, [label]));
    });
    if (!items.length) return null;
    return h("div", { class: "cbw-sources", role: "group", "aria-label": t("sources") }, [
      h("div", { class: "cbw-sources-title", text: t("sources") }),
      h("ul", {}, items),
    ]);
  }

  function orderCard(order) {
    var title = t("order", { number: order.order_number });
    var statuses = texts.statuses || TEXTS.en.statuses;
    var list = h("dl", { class: "cbw-order-facts" }, [
      h("dt", { text: t("orderStatus") }),
      h("dd", { text: statuses[order.status] || statuses.unknown }),
    ]);
    var card = h("div", { class: "cbw-order", role: "group", "aria-label": title }, [
      h("div", { class: "cbw-order-title", text: title }),
      list,
    ]);
    var items = (order.line_items || []).filter(function (item) {
      return item && item.name;
    });
    if (items.length) {
      card.appendChild(h("div", { class: "cbw-order-subtitle", text: t("items") }));
      card.appendChild(
        h(
          "ul",
          { class: "cbw-order-items" },
          items.slice(0, 20).map(function (item) {
            return h("li", { text: (item.quantity || 1) + " × " + item.name });
          }),
        ),
      );
    }
    (order.shipments || []).forEach(function (shipment) {
      if (!shipment || !(shipment.tracking_number || shipment.carrier)) return;
      var parts = [
        h("div", {
          class: "cbw-order-subtitle",
          text: t("shipment") + (shipment.carrier ? ": " + shipment.carrier : ""),
        }),
      ];
      if (shipment.tracking_number) {
        parts.push(h("div", { text: t("trackingNumber") + ": " + shipment.tracking_number }));
      }
      var link = shipment.tracking_url && safeLink(shipment.tracking_url);
      if (link) {
        parts.push(
          h("a", {
            href: link,
            target: "_blank",
            rel: "noopener noreferrer",
            class: "cbw-order-link",
            text: t("track"),
          }),
        );
      }
      card.appendChild(h("div", { class: "cbw-order-shipment" }, parts));
    });
    var page = order.status_page_url && safeLink(order.status_page_url);
    if (page) {
      card.appendChild(
        h("a", {
          href: page,
          target: "_blank",
          rel: "noopener noreferrer",
          class: "cbw-order-link",
          text: t("orderPage"),
        }),
      );
    }
    return card;
  }

  // --- help: contact, handoff, rating --------------------------------------------------------------

  /* The helpdesk endpoints are optional: a 404 for our own valid session means "not here". */
  function detectHelpdesk() {
    if (!state.session) return Promise.resolve(false);
    var sessionId = state.session.session_id;
    var path = "/api/sessions/" + encodeURIComponent(sessionId) + "/support";
    return api("GET", path, { auth: "token" }).then(
      function (reply) {
        if (!state.session || state.session.session_id !== sessionId) return false;
        state.helpdesk = reply.status === 200 && reply.body ? reply.body : false;
        ui.rateButton.hidden = !state.helpdesk;
        return state.helpdesk;
      },
      function () {
        return null; // offline: ask again when the help view opens
      },
    );
  }

  function ensureSession() {
    if (state.session) return Promise.resolve(true);
    var body = { chatbot_id: CHATBOT_ID };
    if (USER_ID) body.user_id = USER_ID;
    return api("POST", "/api/sessions", { json: body, auth: "widget" }).then(function (reply) {
      if (reply.status === 201 && reply.body && reply.body.sessionId) {
        sessionSave({
          session_id: reply.body.sessionId,
          conversation_token: reply.body.conversation_token,
          websocket_url: reply.body.websocket_url || null,
          turn_id: null,
        });
        return true;
      }
      throw reply;
    });
  }

  function showSide(title, children, opener) {
    ui.sideView.textContent = "";
    var back = h("button", {
      type: "button",
      class: "cbw-link-button cbw-back",
      text: "← " + t("back"),
      onclick: function () {
        closeSide(opener);
      },
    });
    ui.sideView.appendChild(back);
    ui.sideView.appendChild(h("h3", { class: "cbw-side-title", text: title }));
    children.forEach(function (child) {
      if (child) ui.sideView.appendChild(child);
    });
    ui.chatView.hidden = true;
    ui.sideView.hidden = false;
    focusFirst();
    var heading = ui.sideView.querySelector(".cbw-side-title");
    if (heading) {
      heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  }

  function closeSide(opener) {
    ui.sideView.hidden = true;
    ui.sideView.textContent = "";
    ui.chatView.hidden = false;
    (opener || ui.input).focus();
  }

  function formatHours(hours) {
    hours = hours || {};
    var days = texts.days || TEXTS.en.days;
    var groups = [];
    WEEKDAYS.forEach(function (day, index) {
      var spans = (hours[day] || [])
        .map(function (span) {
          return span[0] + "–" + span[1];
        })
        .join(", ");
      var last = groups[groups.length - 1];
      if (spans && last && last.spans === spans && last.end === index - 1) last.end = index;
      else if (spans) groups.push({ start: index, end: index, spans: spans });
    });
    return groups
      .map(function (g) {
        var name = g.start === g.end ? days[g.start] : days[g.start] + "–" + days[g.end];
        return name + " " + g.spans;
      })
      .join("; ");
  }

  function contactDetails(support) {
    var items = [];
    if (support.contact_email) {
      items.push(
        h("li", {}, [
          t("email") + ": ",
          h("a", { href: "mailto:" + support.contact_email, text: support.contact_email }),
        ]),
      );
    }
    if (support.contact_phone) {
      var tel = support.contact_phone.replace(/[^+\d]/g, "");
      items.push(
        h("li", {}, [
          t("phone") + ": ",
          h("a", { href: "tel:" + tel, text: support.contact_phone }),
        ]),
      );
    }
    return items.length ? h("ul", { class: "cbw-contact-details" }, items) : null;
  }

  function field(label, control) {
    var id = uid("field");
    control.id = id;
    return h("div", { class: "cbw-field" }, [h("label", { for: id, text: label }), control]);
  }

  /* A side-view form: posts JSON, shows the server's message on success or the error inline. */
  function sideForm(fields, submitText, submit) {
    var error = h("div", { class: "cbw-form-error", role: "alert" });
    var button = h("button", { type: "submit", class: "cbw-button cbw-primary", text: submitText });
    var form = h(
      "form",
      {
        class: "cbw-form",
        onsubmit: function (event) {
          event.preventDefault();
          error.textContent = "";
          button.disabled = true;
          submit(form).then(
            function (message) {
              button.disabled = false;
              if (message) error.textContent = message;
            },
            function () {
              button.disabled = false;
              error.textContent = t("network");
            },
          );
        },
      },
      fields.concat([error, button]),
    );
    return form;
  }

  function openHelp() {
    var opener = ui.helpButton;
    var body = h("div", { class: "cbw-help-body" }, [h("p", { text: t("loading") })]);
    showSide(t("help"), [body], opener);
    var fallback = state.config.support || {};
    ensureSession()
      .then(function () {
        return state.helpdesk === null ? detectHelpdesk() : state.helpdesk;
      })
      .then(
        function (support) {
          renderHelp(body, support || null, fallback, opener);
        },
        function () {
          renderHelp(body, null, fallback, opener);
        },
      );
  }

  function renderHelp(body, support, fallback, opener) {
    body.textContent = "";
    var info = support || fallback;
    var open = support ? support.open_now : fallback.open_now;
    body.appendChild(
      h("p", { class: "cbw-support-state", text: open ? t("supportOpen") : t("supportClosed") }),
    );
    var hours = formatHours(info.opening_hours);
    if (hours) body.appendChild(h("p", { class: "cbw-hours", text: t("hours", { hours: hours }) }));
    var details = contactDetails(info);
    if (details) body.appendChild(details);
    if (open && !humanTurnOpen()) {
      // A live chat with the shop's agents when one is online, else the ticket (askForPerson).
      body.appendChild(
        h("button", {
          type: "button",
          class: "cbw-button cbw-primary cbw-talk-person",
          text: t("talkHuman"),
          onclick: function () {
            askForPerson(opener, support);
          },
        }),
      );
    }
    if (!support || support.offer === "contact") return; // no helpdesk: the details are all
    if (support.handoff && support.handoff.state !== "failed") {
      body.appendChild(h("p", { class: "cbw-meta", text: t("alreadyHandedOff") }));
    }
    body.appendChild(h("h4", { class: "cbw-side-subtitle", text: t("contactTitle") }));
    body.appendChild(h("p", { text: t("contactIntro") }));
    var name = h("input", { type: "text", autocomplete: "name", maxlength: "200" });
    var email = h("input", {
      type: "email",
      autocomplete: "email",
      required: true,
      maxlength: "254",
    });
    var message = h("textarea", { rows: "4", required: true, maxlength: "5000" });
    body.appendChild(
      sideForm(
        [field(t("name"), name), field(t("yourEmail"), email), field(t("message"), message)],
        t("contactSubmit"),
        function () {
          return postHelp(
            "contact",
            { name: name.value, email: email.value, message: message.value },
            opener,
          );
        },
      ),
    );
  }

  function openHandoff(opener) {
    var reason = h("textarea", { rows: "3", maxlength: "500" });
    var email = h("input", { type: "email", autocomplete: "email", maxlength: "254" });
    var name = h("input", { type: "text", autocomplete: "name", maxlength: "200" });
    showSide(
      t("handoffTitle"),
      [
        sideForm(
          [
            field(t("handoffReason"), reason),
            field(t("name"), name),
            field(t("yourEmailOptional"), email),
          ],
          t("handoffSubmit"),
          function () {
            return postHelp(
              "handoff",
              { reason: reason.value, name: name.value, email: email.value },
              opener,
            );
          },
        ),
      ],
      opener,
    );
  }

  /* Resolves an error text to show in the form, or closes the view and notes the answer. */
  function postHelp(kind, payload, opener) {
    var path = "/api/sessions/" + encodeURIComponent(state.session.session_id) + "/" + kind;
    return api("POST", path, { json: payload, auth: "token" }).then(function (reply) {
      if (reply.status >= 200 && reply.status < 300) {
        closeSide(opener);
        addNote((reply.body && reply.body.message) || t("alreadyHandedOff"), "success");
        detectHelpdesk();
        return null;
      }
      if (reply.status === 404) {
        state.helpdesk = false;
        ui.rateButton.hidden = true;
      }
      return describeFailure(reply);
    });
  }

  function openRating() {
    var opener = ui.rateButton;
    var current = (state.helpdesk && state.helpdesk.rating) || {};
    var name = uid("score");
    var choices = [1, 2, 3, 4, 5].map(function (n) {
      var id = uid("star");
      return h("span", { class: "cbw-star" }, [
        h("input", {
          type: "radio",
          name: name,
          id: id,
          value: String(n),
          required: true,
          checked: current.score === n,
        }),
        h("label", { for: id, title: t("star", { n: n }) }, [
          h("span", { "aria-hidden": "true", text: "★" }),
          h("span", { class: "cbw-sr-only", text: t("star", { n: n }) }),
          h("span", { class: "cbw-star-number", "aria-hidden": "true", text: String(n) }),
        ]),
      ]);
    });
    var comment = h("textarea", { rows: "3", maxlength: "2000" });
    comment.value = current.comment || "";
    var fieldset = h(
      "fieldset",
      { class: "cbw-stars" },
      [h("legend", { text: t("rateLegend") })].concat(choices),
    );
    showSide(
      t("rateTitle"),
      [
        sideForm([fieldset, field(t("comment"), comment)], t("rateSubmit"), function (form) {
          var picked = form.querySelector('input[name="' + name + '"]:checked');
          var path = "/api/sessions/" + encodeURIComponent(state.session.session_id) + "/rating";
          return api("POST", path, {
            json: { score: picked ? parseInt(picked.value, 10) : 0, comment: comment.value },
            auth: "token",
          }).then(function (reply) {
            if (reply.status === 200) {
              if (state.helpdesk)
                state.helpdesk.rating = { score: reply.body.score, comment: reply.body.comment };
              closeSide(opener);
              addNote(t("rated"), "success");
              return null;
            }
            if (reply.status === 404) {
              state.helpdesk = false;
              ui.rateButton.hidden = true;
            }
            return describeFailure(reply);
          });
        }),
      ],
      opener,
    );
  }

  // --- start -------------------------------------------------------------------------------------

  function loadConfig(attempt) {
    return api("GET", "/api/conversation-config/" + encodeURIComponent(CHATBOT_ID)).then(
      function (reply) {
        if (reply.status === 200 && reply.body && reply.body.configuration) {
          return reply.body.configuration;
        }
        // Unknown or inactive chatbot: the widget shows nothing.
        console.warn(
          "chat widget: chatbot " + CHATBOT_ID + " is not available (" + reply.status + ")",
        );
        return null;
      },
      function () {
        if (attempt >= 4) return null;
        return new Promise(function (resolve) {
          setTimeout(resolve, 1000 * Math.pow(2, attempt));
        }).then(function () {
          return loadConfig(attempt + 1);
        });
      },
    );
  }

  function start(config) {
    if (!config) return;
    state.config = config;
    var language = (LANGUAGE_OVERRIDE || config.language_code || "en").slice(0, 2).toLowerCase();
    state.language = TEXTS[language] ? language : "en";
    texts = TEXTS[state.language];
    buildUi();
    var hook = {
      open: function () {
        setOpen(true);
      },
      close: function () {
        setOpen(false);
      },
      /* Close the WebSocket as if the network dropped (tests, debugging): the widget reconnects. */
      dropSocket: function () {
        var sock = state.ws;
        if (!sock) return false;
        sock.close();
        return true;
      },
      /* Close the answers' event streams as if the network dropped: each reopens from the last
       * event shown (the way EventSource itself reconnects, with the id it saw last). */
      dropStreams: function () {
        var dropped = 0;
        unfinishedTurns().forEach(function (turn) {
          if (!turn.stream) return;
          turn.stream.close();
          turn.stream = null;
          dropped += 1;
          streamTurn(turn.id);
        });
        return dropped > 0;
      },
      info: function () {
        return {
          transport: state.transport,
          session_id: state.session && state.session.session_id,
          websocket_connects: state.wsConnects,
          websocket_failures: state.wsFailures,
          sse_connects: state.sseConnects,
          sse_failures: state.sseFailures,
          busy_turn: state.busyTurn,
          language: state.language,
        };
      },
    };
    window.__chatWidgets = window.__chatWidgets || {};
    window.__chatWidgets[CHATBOT_ID] = hook;
    window.__chatWidget = hook;
    if (OPEN_ON_LOAD) setOpen(true);
  }

  function boot() {
    loadConfig(0).then(start);
  }

  if (document.body) boot();
  else document.addEventListener("DOMContentLoaded", boot);
})();
