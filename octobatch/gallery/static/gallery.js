// octobatch gallery: filters, sort, comparison view and lazy videos over the server-rendered
// cards; in review mode also the decision and take controls. Page text is only ever set with
// textContent: prompts and errors are user and provider text.
(() => {
  "use strict";
  const grid = document.getElementById("cards");
  const toolbar = document.getElementById("toolbar");
  const compare = document.getElementById("compare");
  const shown = document.getElementById("shown");
  const cards = Array.from(grid.querySelectorAll("article.card"));
  const tokenMeta = document.querySelector('meta[name="octobatch-token"]');
  const token = tokenMeta ? tokenMeta.content : null;
  const FILTERS = ["status", "model", "decision"];
  const ATTENTION = { failed: 0, uncertain: 1 };
  let sortedBy = "attention";  // the order the page was written in
  let current = null;

  // --- state in the URL hash: #status=failed&model=omni-fast&sort=id&view=compare ---------
  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    const state = {};
    for (const key of [...FILTERS, "sort", "view"]) state[key] = params.get(key) || "";
    return state;
  }

  function writeHash(state) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) if (value) params.set(key, value);
    const hash = params.toString();
    if (hash !== location.hash.slice(1)) location.hash = hash;
    else apply();
  }

  function stateFromToolbar() {
    const data = new FormData(toolbar);
    const state = {};
    for (const key of [...FILTERS, "sort"]) state[key] = data.get(key) || "";
    if (state.sort === "attention") state.sort = "";
    state.view = data.get("view") || "";
    return state;
  }

  function syncToolbar(state) {
    for (const key of [...FILTERS, "sort"]) {
      const select = toolbar.elements[key];
      select.value = state[key] || (key === "sort" ? "attention" : "");
    }
    toolbar.elements.view.checked = state.view === "compare";
  }

  // --- filter and sort ----------------------------------------------------------------------
  function matches(card, state) {
    return FILTERS.every((key) => !state[key] || card.dataset[key] === state[key]);
  }

  function sortKey(sort) {
    const order = (c) => Number(c.dataset.order);
    if (sort === "manifest") return (a, b) => order(a) - order(b);
    if (sort === "id") return (a, b) => (a.dataset.id < b.dataset.id ? -1 : a.dataset.id > b.dataset.id ? 1 : 0);
    if (sort === "newest") {
      return (a, b) => (b.dataset.completed || "").localeCompare(a.dataset.completed || "") || order(a) - order(b);
    }
    const rank = (c) => ("orphan" in c.dataset ? 10 : 0) + (ATTENTION[c.dataset.status] ?? 2);
    return (a, b) => rank(a) - rank(b) || order(a) - order(b);
  }

  function apply() {
    const state = readHash();
    syncToolbar(state);
    const sort = state.sort || "attention";
    if (sort !== sortedBy) {
      grid.append(...cards.slice().sort(sortKey(sort)));
      sortedBy = sort;
    }
    let visible = 0;
    for (const card of cards) {
      const show = matches(card, state);
      if (card.hidden === show) card.hidden = !show;
      if (show) visible += 1;
    }
    shown.textContent = `showing ${visible} of ${cards.length}`;
    for (const li of document.querySelectorAll("[data-count]")) {
      const [key, value] = li.dataset.count.split(/:(.*)/s);
      li.classList.toggle("active", state[key] === value);
    }
    const comparing = state.view === "compare";
    compare.hidden = !comparing;
    grid.hidden = comparing;
    if (comparing) renderCompare(state);
  }

  toolbar.addEventListener("change", () => writeHash(stateFromToolbar()));
  toolbar.addEventListener("submit", (event) => event.preventDefault());
  window.addEventListener("hashchange", apply);

  // --- lazy videos: a card's player is made only as the card nears the viewport -----------
  function player(link) {
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.src = link.getAttribute("href");
    link.replaceWith(video);
  }
  const lazy = "IntersectionObserver" in window
    ? new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        lazy.unobserve(entry.target);
        player(entry.target);
      }
    }, { rootMargin: "800px 0px" })
    : null;
  function watch(root) {
    for (const link of root.querySelectorAll("a.lazy-video")) {
      if (lazy) lazy.observe(link);
      else player(link);
    }
  }
  watch(grid);

  // --- comparison view: an entry's variants side by side on the fields that differ ----------
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function cell(card) {
    const td = el("td", undefined, "cell");
    const frame = card.querySelector(".frame");
    if (frame) {
      const copy = frame.cloneNode(true);
      td.append(copy);
      watch(copy);
    }
    const link = el("a", card.dataset.id);
    link.href = `#job-${encodeURIComponent(card.dataset.id)}`;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const state = readHash();
      state.view = "";
      writeHash(state);
      focusCard(card);
    });
    td.append(link, el("span", ` ${card.dataset.status}`, `badge s-${card.dataset.status}`));
    if (card.dataset.decision !== "unreviewed") {
      td.append(el("span", ` ${card.dataset.decision}`, `badge d-${card.dataset.decision}`));
    }
    td.dataset.job = card.dataset.id;
    return td;
  }

  function renderCompare(state) {
    compare.replaceChildren();
    const groups = new Map();
    for (const card of cards) {
      if (!card.dataset.group || !matches(card, state)) continue;
      if (!groups.has(card.dataset.group)) groups.set(card.dataset.group, []);
      groups.get(card.dataset.group).push(card);
    }
    if (!groups.size) {
      compare.append(el("p", "No matrix or rows entry with more than one job matches the filters.", "empty"));
      return;
    }
    for (const [group, members] of groups) {
      members.sort((a, b) => Number(a.dataset.order) - Number(b.dataset.order));
      const vars = members.map((c) => JSON.parse(c.dataset.vars));
      const keys = Object.keys(vars[0]);
      const columnKey = keys[keys.length - 1];
      const rowKeys = keys.slice(0, -1);
      const columns = [...new Set(vars.map((v) => v[columnKey]))];
      const rows = new Map();
      members.forEach((card, i) => {
        const label = rowKeys.map((k) => `${k}: ${vars[i][k]}`).join(", ");
        if (!rows.has(label)) rows.set(label, new Map());
        rows.get(label).set(vars[i][columnKey], card);
      });
      const section = el("div", undefined, "group");
      section.dataset.group = group;
      section.append(el("h2", `${group}: ${members.length} variants`));
      const table = el("table");
      const head = el("tr");
      head.append(el("th", rowKeys.join(", ")));
      for (const value of columns) head.append(el("th", `${columnKey}: ${value}`));
      table.append(head);
      for (const [label, byValue] of rows) {
        const tr = el("tr");
        tr.append(el("th", label));
        for (const value of columns) tr.append(byValue.has(value) ? cell(byValue.get(value)) : el("td"));
        table.append(tr);
      }
      section.append(table);
      compare.append(section);
    }
  }

  // --- review mode: decisions and takes, by click and by keyboard ---------------------------
  function visibleCards() {
    return Array.from(grid.children).filter((c) => c.matches("article.card") && !c.hidden);
  }

  function focusCard(card) {
    if (current) current.classList.remove("current");
    current = card;
    if (!card) return;
    card.classList.add("current");
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "nearest" });
  }

  function recount() {
    const counts = {};
    for (const card of cards) counts[card.dataset.decision] = (counts[card.dataset.decision] || 0) + 1;
    for (const li of document.querySelectorAll('[data-count^="decision:"]')) {
      li.querySelector("b").textContent = String(counts[li.dataset.count.slice(9)] || 0);
    }
  }

  function showDecision(card, decision) {
    card.dataset.decision = decision || "unreviewed";
    const badges = card.querySelector(".badges");
    for (const old of badges.querySelectorAll(".d-approved, .d-rejected")) old.remove();
    if (decision) badges.insertBefore(el("span", decision, `badge d-${decision}`), badges.children[1] || null);
    recount();
  }

  async function review(card, body) {
    const box = card.querySelector(".review");
    const old = card.querySelector(".review-error");
    if (old) old.remove();
    box.classList.add("busy");
    try {
      const response = await fetch(`/api/jobs/${encodeURIComponent(card.dataset.id)}/review`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Octobatch-Token": token },
        body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || response.statusText);
      if ("take" in body) {
        sessionStorage.setItem("octobatch-current", card.dataset.id);
        location.reload();
        return;
      }
      showDecision(card, answer.review ? answer.review.decision : null);
    } catch (error) {
      box.after(el("p", `not saved: ${error.message}`, "review-error"));
    } finally {
      box.classList.remove("busy");
    }
  }

  if (token) {
    grid.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      const card = button && button.closest("article.card");
      if (!card) return;
      focusCard(card);
      if (button.dataset.take) review(card, { decision: card.dataset.decision === "unreviewed" ? null : card.dataset.decision, take: Number(button.dataset.take) });
      else if ("decision" in button.dataset) review(card, { decision: button.dataset.decision || null });
    });
    document.addEventListener("keydown", (event) => {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.target.closest && event.target.closest("select, input, textarea")) return;
      const list = visibleCards();
      const at = list.indexOf(current);
      const key = event.key;
      if (key === "j" || key === "ArrowDown") focusCard(list[Math.min(at + 1, list.length - 1)]);
      else if (key === "k" || key === "ArrowUp") focusCard(list[Math.max(at - 1, 0)]);
      else if (key === "c") { const s = readHash(); s.view = s.view ? "" : "compare"; writeHash(s); }
      else if (!current || current.hidden || !current.querySelector(".review")) return;
      else if (key === "a") review(current, { decision: "approved" });
      else if (key === "r") review(current, { decision: "rejected" });
      else if (key === "u") review(current, { decision: null });
      else if (/^[1-9]$/.test(key) && current.querySelector(`[data-take="${key}"]`)) {
        const decision = current.dataset.decision === "unreviewed" ? null : current.dataset.decision;
        review(current, { decision, take: Number(key) });
      } else return;
      event.preventDefault();
    });
  }

  toolbar.hidden = false;
  apply();
  const remembered = token && sessionStorage.getItem("octobatch-current");
  if (remembered) {
    sessionStorage.removeItem("octobatch-current");
    focusCard(cards.find((c) => c.dataset.id === remembered) || null);
  } else if (token) {
    focusCard(visibleCards()[0] || null);
  }
  document.documentElement.dataset.ready = "1";
  if (window.performance && performance.mark) performance.mark("octobatch-ready");
})();
