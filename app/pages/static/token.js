// The token page: create, list and revoke tokens and authorised applications, all
// through /hub/api/users/<me>/tokens. Everything shown is set as text (never as HTML).
document.addEventListener("DOMContentLoaded", () => {
  const api = document.getElementById("tokens").dataset.apiUrl;
  const error = document.getElementById("token-error");
  const JUPYTERHUB = "JupyterHub";

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "Never");
  const cell = (row, text) => {
    const td = row.insertCell();
    td.textContent = text;
    return td;
  };
  const revokeButton = (row, label, id) => {
    const button = document.createElement("button");
    button.className = "button danger";
    button.textContent = "Revoke";
    button.setAttribute("aria-label", `Revoke ${label}`);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await hubApi("DELETE", `${api}/${encodeURIComponent(id)}`);
        await load();
      } catch (e) {
        button.disabled = false;
        hubShowError(error, e);
      }
    });
    row.insertCell().appendChild(button);
  };
  const show = (tableId, emptyId, count) => {
    document.getElementById(tableId).hidden = count === 0;
    document.getElementById(emptyId).hidden = count !== 0;
  };

  const showTokens = (tokens) => {
    const body = document.querySelector("#api-tokens tbody");
    body.replaceChildren();
    for (const token of tokens) {
      const row = body.insertRow();
      row.dataset.tokenId = token.id;
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = token.note || token.id;
      row.appendChild(head);
      cell(row, token.scopes.join(" "));
      cell(row, when(token.last_activity));
      cell(row, when(token.created));
      cell(row, token.expires_at ? when(token.expires_at) : "Never");
      revokeButton(row, token.note || token.id, token.id);
    }
    show("api-tokens", "no-api-tokens", tokens.length);
  };

  // One row per application: revoking one of its tokens revokes them all.
  const showApps = (tokens) => {
    const apps = new Map();
    for (const token of tokens) {
      const app = apps.get(token.oauth_client) || { tokens: [], last: null, first: token.created };
      app.tokens.push(token);
      if (token.last_activity && (!app.last || token.last_activity > app.last)) app.last = token.last_activity;
      if (token.created < app.first) app.first = token.created;
      apps.set(token.oauth_client, app);
    }
    const body = document.querySelector("#apps tbody");
    body.replaceChildren();
    for (const [name, app] of apps) {
      const row = body.insertRow();
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = name;
      row.appendChild(head);
      cell(row, when(app.last));
      cell(row, when(app.first));
      revokeButton(row, name, app.tokens[0].id);
    }
    show("apps", "no-apps", apps.size);
  };

  const load = async () => {
    const { data } = await hubApi("GET", api);
    const tokens = data.api_tokens;
    showTokens(tokens.filter((t) => t.oauth_client === JUPYTERHUB));
    showApps(tokens.filter((t) => t.oauth_client !== JUPYTERHUB));
  };

  document.getElementById("new-token").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const scopes = form.elements.scopes.value.split(/[\s,]+/).filter(Boolean);
    const body = { note: form.elements.note.value.trim() || null };
    const expires = Number(form.elements.expires_in.value);
    if (expires) body.expires_in = expires;
    if (scopes.length) body.scopes = scopes;
    error.textContent = "";
    // The box shows the answer to this request only: beside a refusal, an earlier
    // token would read as made by the request that was refused.
    const box = document.getElementById("new-token-box");
    box.hidden = true;
    document.getElementById("new-token-value").textContent = "";
    try {
      const { data } = await hubApi("POST", api, body);
      document.getElementById("new-token-value").textContent = data.token;
      box.hidden = false;
      form.reset();
      await load();
    } catch (e) {
      hubShowError(error, e);
    }
  });

  load().catch((e) => hubShowError(error, e));
});
