// Talks to the backend through the same origin: the proxy routes /api to it.
"use strict";

const $ = (id) => document.getElementById(id);

async function api(path, options) {
  const resp = await fetch(path, options);
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error || resp.statusText);
  return body;
}

function show(items) {
  const list = $("items");
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = item.text;  // textContent: user input is never parsed as HTML
    li.title = item.created_at;
    return li;
  }));
}

async function refresh() {
  try {
    $("backend-version").textContent = (await api("/api/version")).version;
    show(await api("/api/items"));
    $("status").textContent = "";
  } catch (err) {
    $("status").textContent = "Backend unavailable: " + err.message;
  }
}

$("add").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value;
  try {
    await api("/api/items", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text }),
    });
    $("text").value = "";
    await refresh();
  } catch (err) {
    $("status").textContent = "Could not add: " + err.message;
  }
});

refresh();
