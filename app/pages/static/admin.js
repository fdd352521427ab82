// The admin page: one page of users at a time from GET /hub/api/users (paginated,
// searched and sorted on the server), groups, and every action through the REST API.
// Everything shown is set as text, never as HTML.
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("admin");
  const limit = Number(root.dataset.pageSize);
  const openServers = root.dataset.openServers === "true";
  const error = document.getElementById("admin-error");
  const status = document.getElementById("admin-status");
  const PAGINATED = { Accept: "application/jupyterhub-pagination+json" };
  const state = { offset: 0, total: 0, nameFilter: "", sort: "name" };
  const enc = encodeURIComponent;

  const el = (tag, text, attrs = {}) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  };
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "Never");
  const say = (text) => {
    error.textContent = "";
    status.textContent = text;
  };
  // Run an API call from a button; show what went wrong, then show the page again.
  const action = (label, ariaLabel, run, className = "button small") => {
    const button = el("button", label, { type: "button", class: className, "aria-label": ariaLabel });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        say(await run());
      } catch (e) {
        hubShowError(error, e);
      }
      await refresh();
    });
    return button;
  };

  const getJson = async (url) => {
    const xsrf = document.querySelector('meta[name="xsrf-token"]').content;
    const response = await fetch(url, { headers: { ...PAGINATED, "X-XSRFToken": xsrf }, credentials: "same-origin" });
    if (!response.ok) throw new Error((await response.json()).message || response.statusText);
    return response.json();
  };

  const serverApi = (user, name) =>
    name ? `/hub/api/users/${enc(user)}/servers/${enc(name)}` : `/hub/api/users/${enc(user)}/server`;

  const serverLine = (user, name, server) => {
    const line = el("div", undefined, { class: "server-line" });
    const label = name || "default";
    const stateText = server.ready ? "running" : server.pending ? `${server.pending}ing` : "stopped";
    line.append(el("span", `${label}: ${stateText}`));
    if (server.ready && openServers) {
      line.append(el("a", "Open", { class: "button small", href: server.url, "aria-label": `Open ${user}'s server ${label}` }));
    }
    if (server.ready || server.pending === "spawn") {
      line.append(action("Stop", `Stop ${user}'s server ${label}`, async () => {
        await hubApi("DELETE", serverApi(user, name));
        return `Stopping ${user}'s server ${label}.`;
      }));
    } else if (!server.pending) {
      // Stopped, failed, or never started (no row): it can be started.
      const what = name ? `${user}'s server ${name}` : `${user}'s server`;
      line.append(action("Start", `Start ${what}`, async () => {
        await hubApi("POST", serverApi(user, name));
        return `Starting ${what}.`;
      }));
    }
    return line;
  };

  // A cell; on a phone, where the rows are stacked, `label` stands for its column's header.
  const cell = (row, label) => {
    const td = row.insertCell();
    if (label) td.dataset.label = label;
    return td;
  };

  const userRow = (body, user) => {
    const row = body.insertRow();
    row.dataset.user = user.name;
    row.append(el("th", user.name, { scope: "row" }));
    // The visible words begin the accessible name (WCAG 2.5.3: say what you see).
    cell(row, "Admin").append(action(user.admin ? "Unmake admin" : "Make admin",
      `${user.admin ? "Unmake" : "Make"} admin: ${user.name}`, async () => {
        await hubApi("PATCH", `/hub/api/users/${enc(user.name)}`, { admin: !user.admin });
        return `${user.name} is ${user.admin ? "no longer an" : "now an"} admin.`;
      }));
    cell(row, "Last activity").textContent = when(user.last_activity);
    const servers = cell(row, "Servers");
    // The default server first, with a line (and Start) even before its first start.
    const all = { "": { ready: false, pending: null }, ...(user.servers || {}) };
    for (const [name, server] of Object.entries(all)) servers.append(serverLine(user.name, name, server));
    const actions = cell(row);
    actions.className = "row-actions";
    const edit = el("button", "Edit", { type: "button", class: "button small", "aria-label": `Edit user ${user.name}` });
    edit.addEventListener("click", () => editUser(user));
    actions.append(edit, action("Delete", `Delete user ${user.name}`, async () => {
      if (!window.confirm(`Delete user ${user.name}?`)) return "";
      await hubApi("DELETE", `/hub/api/users/${enc(user.name)}`);
      return `Deleted ${user.name}.`;
    }, "button small danger"));
  };

  // The Edit User dialog: rename and the admin flag in one PATCH, so either both
  // change or neither; the API's refusal (name taken, not a username, a server
  // still active) is said in the dialog, which stays open to correct it.
  const dialog = document.getElementById("edit-user");
  const editForm = document.getElementById("edit-form");
  const editError = document.getElementById("edit-error");
  const editName = document.getElementById("edit-name");
  const editAdmin = document.getElementById("edit-admin");
  let editing = null;
  const editUser = (user) => {
    editing = user;
    document.getElementById("edit-heading").textContent = `Edit user ${user.name}`;
    editName.value = user.name;
    editAdmin.checked = user.admin;
    editError.textContent = "";
    dialog.showModal();
    editName.focus();
  };
  const editChanges = (user) => {
    const changes = {};
    const name = editName.value.trim();
    if (name !== user.name) changes.name = name;
    if (editAdmin.checked !== user.admin) changes.admin = editAdmin.checked;
    return changes;
  };
  const editSaid = (user, changes, saved) => {
    const said = [];
    if (saved.name !== user.name) said.push(`Renamed ${user.name} to ${saved.name}.`);
    if ("admin" in changes) said.push(`${saved.name} is ${saved.admin ? "now an" : "no longer an"} admin.`);
    return said.join(" ") || `Nothing changed for ${saved.name}.`;
  };
  editForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = editing;
    const changes = editChanges(user);
    const save = event.submitter;
    editError.textContent = "";
    if (Object.keys(changes).length) {
      // One PATCH at a time: a second would name the user by the name just changed.
      save.disabled = true;
      try {
        const { data } = await hubApi("PATCH", `/hub/api/users/${enc(user.name)}`, changes);
        say(editSaid(user, changes, data));
      } catch (e) {
        hubShowError(editError, e);
        return;
      } finally {
        save.disabled = false;
      }
    }
    dialog.close();
    await refresh();
  });
  document.getElementById("edit-cancel").addEventListener("click", () => dialog.close());

  const sortSelect = document.getElementById("sort");
  const sortable = [...document.querySelectorAll("#users th[data-sort-up]")];
  // aria-sort on the header of the column the rows are sorted by, and the select in step.
  const showSort = () => {
    sortSelect.value = state.sort;
    for (const th of sortable) {
      const way = state.sort === th.dataset.sortUp ? "ascending" : state.sort === th.dataset.sortDown ? "descending" : null;
      if (way) th.setAttribute("aria-sort", way);
      else th.removeAttribute("aria-sort");
      th.querySelector(".sort-mark").textContent = way === "ascending" ? " ▲" : way === "descending" ? " ▼" : "";
    }
  };
  const sortBy = (sort) => {
    state.sort = sort;
    state.offset = 0;
    showSort();
    refresh();
  };
  for (const th of sortable) {
    // A header sorts its column its first way (data-sort-first), then the other way.
    th.querySelector("button").addEventListener("click", () => {
      const { sortUp, sortDown, sortFirst } = th.dataset;
      sortBy(state.sort !== sortFirst ? sortFirst : sortFirst === sortUp ? sortDown : sortUp);
    });
  }

  const loadUsers = async () => {
    const query = new URLSearchParams({ offset: state.offset, limit, sort: state.sort, include_stopped_servers: "" });
    if (state.nameFilter) query.set("name_filter", state.nameFilter);
    const page = await getJson(`/hub/api/users?${query}`);
    state.total = page._pagination.total;
    const body = document.querySelector("#users tbody");
    body.replaceChildren();
    for (const user of page.items) userRow(body, user);
    const last = Math.min(state.offset + page.items.length, state.total);
    document.getElementById("page-info").textContent =
      state.total ? `Users ${state.offset + 1}–${last} of ${state.total}` : "No users";
    document.getElementById("prev").disabled = state.offset === 0;
    document.getElementById("next").disabled = !page._pagination.next;
  };

  const groupItem = (list, group) => {
    const item = el("li");
    item.dataset.group = group.name;
    item.append(el("strong", group.name), " ");
    item.append(el("span", group.users.length ? group.users.join(", ") : "no members", { class: "members" }), " ");
    const form = el("form", undefined, { class: "inline-form" });
    const id = `member-${list.children.length}`;
    form.append(el("label", `Username for ${group.name}`, { for: id }), el("input", undefined, { id, name: "member", required: "" }));
    const add = el("button", "Add", { type: "submit", class: "button small", "aria-label": `Add to ${group.name}` });
    const remove = el("button", "Remove", { type: "button", class: "button small", "aria-label": `Remove from ${group.name}` });
    const members = async (method) => {
      const user = form.elements.member.value.trim();
      if (!user) return;
      try {
        await hubApi(method, `/hub/api/groups/${enc(group.name)}/users`, { users: [user] });
        say(`${method === "POST" ? "Added" : "Removed"} ${user} ${method === "POST" ? "to" : "from"} ${group.name}.`);
      } catch (e) {
        hubShowError(error, e);
      }
      await refresh();
    };
    form.addEventListener("submit", (event) => { event.preventDefault(); members("POST"); });
    remove.addEventListener("click", () => members("DELETE"));
    form.append(add, remove, action("Delete group", `Delete group ${group.name}`, async () => {
      await hubApi("DELETE", `/hub/api/groups/${enc(group.name)}`);
      return `Deleted group ${group.name}.`;
    }, "button small danger"));
    item.append(form);
    list.append(item);
  };

  const loadGroups = async () => {
    const page = await getJson("/hub/api/groups?limit=200");
    const list = document.getElementById("groups");
    list.replaceChildren();
    for (const group of page.items) groupItem(list, group);
    if (!page.items.length) list.append(el("li", "No groups yet."));
  };

  const refresh = async () => {
    try {
      await Promise.all([loadUsers(), loadGroups()]);
    } catch (e) {
      hubShowError(error, e);
    }
  };

  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    state.nameFilter = document.getElementById("name-filter").value.trim();
    state.offset = 0;
    refresh();
  });
  sortSelect.addEventListener("change", (event) => sortBy(event.target.value));
  document.getElementById("prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - limit);
    refresh();
  });
  document.getElementById("next").addEventListener("click", () => {
    state.offset += limit;
    refresh();
  });
  document.getElementById("add-users").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const usernames = form.elements.usernames.value.split(/[\s,]+/).filter(Boolean);
    try {
      const { data } = await hubApi("POST", "/hub/api/users", { usernames, admin: form.elements.admin.checked });
      say(`Added ${data.map((u) => u.name).join(", ")}.`);
      form.reset();
    } catch (e) {
      hubShowError(error, e);
    }
    await refresh();
  });
  document.getElementById("add-group").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const name = form.elements.group.value.trim();
    try {
      await hubApi("POST", `/hub/api/groups/${enc(name)}`);
      say(`Created group ${name}.`);
      form.reset();
    } catch (e) {
      hubShowError(error, e);
    }
    await refresh();
  });
  // Stop every running server: the active users, page by page, each server through the API.
  document.getElementById("stop-all").addEventListener("click", async (event) => {
    const button = event.target;
    button.disabled = true;
    try {
      const stops = [];
      for (let offset = 0; ; offset += 200) {
        const page = await getJson(`/hub/api/users?state=active&offset=${offset}&limit=200`);
        for (const user of page.items) {
          for (const name of Object.keys(user.servers || {})) stops.push(hubApi("DELETE", serverApi(user.name, name)));
        }
        if (!page._pagination.next) break;
      }
      await Promise.all(stops);
      say(`Stopping ${stops.length} server(s).`);
    } catch (e) {
      hubShowError(error, e);
    }
    button.disabled = false;
    await refresh();
  });

  showSort();
  refresh();
});
