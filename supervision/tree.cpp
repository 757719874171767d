#include "snakepit/supervision/tree.hpp"

#include <unistd.h>

#include <map>
#include <mutex>

#include <caf/all.hpp>
#include <fmt/format.h>

#include "snakepit/actors/detail/log.hpp"
#include "snakepit/actors/detail/trusted_files.hpp"
#include "snakepit/actors/pool.hpp"
#include "snakepit/actors/python_locator.hpp"
#include "snakepit/actors/runtime_paths.hpp"
#include "snakepit/node/connect_pool.hpp"
#include "snakepit/node/host_port.hpp"
#include "snakepit/observability/token_file.hpp"
#include "snakepit/messages/error.hpp"
#include "snakepit/observability/status_server.hpp"
#include "snakepit/supervision/supervisor.hpp"

namespace snakepit {

class tree_directory {
public:
  struct entry {
    node_kind kind = node_kind::actor;
    caf::actor handle;
  };

  /// What `running_tree::start_child` needs to make a dynamic supervisor's
  /// children: its template node and the registry its actors come from.
  struct dynamic_template {
    tree_node node;
    const actor_registry* registry = nullptr;
  };

  void put_template(const std::string& supervisor, dynamic_template t) {
    std::lock_guard<std::mutex> guard{mtx_};
    templates_[supervisor] = std::move(t);
  }

  bool get_template(const std::string& supervisor, dynamic_template& out) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = templates_.find(supervisor);
    if (i == templates_.end())
      return false;
    out = i->second;
    return true;
  }

  void put(const std::string& name, node_kind kind, caf::actor handle) {
    std::lock_guard<std::mutex> guard{mtx_};
    entries_[name] = entry{kind, std::move(handle)};
  }

  /// Numbers a start of `name` that runs off its supervisor's thread (and
  /// may outlive the supervisor's patience).
  std::uint64_t begin_start(const std::string& name) {
    std::lock_guard<std::mutex> guard{mtx_};
    return ++starts_[name];
  }

  /// Puts the handle of start `start` unless a later start of the same name
  /// began meanwhile: an abandoned start that ends late must not replace
  /// the handle of the one that replaced it.
  bool put_if_latest(const std::string& name, std::uint64_t start, node_kind kind,
                     caf::actor handle) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (starts_[name] != start)
      return false;
    entries_[name] = entry{kind, std::move(handle)};
    return true;
  }

  /// Set by `running_tree::stop()`, seen by every copy of the tree handle.
  void mark_stopped() {
    std::lock_guard<std::mutex> guard{mtx_};
    stopped_ = true;
  }

  bool stopped() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return stopped_;
  }

  bool get(const std::string& name, entry& out) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = entries_.find(name);
    if (i == entries_.end())
      return false;
    out = i->second;
    return true;
  }

private:
  mutable std::mutex mtx_;
  std::map<std::string, entry> entries_;
  std::map<std::string, std::uint64_t> starts_;
  std::map<std::string, dynamic_template> templates_;
  bool stopped_ = false;
};

namespace {

using directory_ptr = std::shared_ptr<tree_directory>;

/// Waits for a child's answer to `(ready_atom)` and tells the supervisor.
template <class Handle, class Ok>
void probe_ready(caf::actor_system& sys, const caf::actor& child, const caf::actor& sup) {
  sys.spawn([child, sup](caf::event_based_actor* self) {
    self->request(caf::actor_cast<Handle>(child), caf::infinite, ready_atom::value)
      .then(
        [self, child, sup](const Ok&) {
          self->send(sup, child_ready_atom::value, child.address(), caf::error{});
          self->quit();
        },
        [self, child, sup](caf::error& err) {
          self->send(sup, child_ready_atom::value, child.address(), std::move(err));
          self->quit();
        });
  });
}

supervisor_config make_supervisor_config(const tree_node& node, const directory_ptr& dir,
                                         const actor_registry* registry);

child_spec make_child(const tree_node& node, const directory_ptr& dir,
                      const actor_registry* registry) {
  child_spec spec;
  spec.id = node.name;
  // Supervisors and pools only spawn (their readiness is awaited apart):
  // inline. User factories are set below.
  spec.start_timeout = caf::timespan{0};
  spec.restart = node.restart;
  spec.shutdown = node.shutdown;
  spec.significant = node.significant;
  auto name = node.name;
  switch (node.kind) {
    case node_kind::supervisor: {
      spec.kind = child_kind::supervisor;
      spec.start = [cfg = make_supervisor_config(node, dir, registry), dir,
                    name](caf::actor_system& sys) -> caf::expected<caf::actor> {
        auto h = caf::actor_cast<caf::actor>(spawn_supervisor(sys, cfg));
        dir->put(name, node_kind::supervisor, h);
        return h;
      };
      spec.await_ready = probe_ready<supervisor_actor, bool>;
      break;
    }
    case node_kind::pool: {
      if (!node.remote_node.empty()) {
        // Another node's pool: connecting blocks (CAF's middleman), so it runs
        // off the supervisor's thread; the node's loss is this child's exit.
        // The loader checked the address.
        auto address
          = split_host_port(node.remote_node).value_or(std::pair<std::string, std::uint16_t>{});
        remote_pool_options watch;
        watch.heartbeat_interval = node.heartbeat_interval;
        watch.heartbeat_timeout = node.heartbeat_timeout;
        watch.local_name = name;
        spec.start = [host = address.first, port = address.second, remote = node.remote_pool,
                      watch, dir, name, timeout = node.start_timeout](
                       caf::actor_system& sys) -> caf::expected<caf::actor> {
          auto start = dir->begin_start(name);
          auto pool = connect_pool(sys, host, port, remote, watch,
                                   std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
          if (!pool)
            return std::move(pool.error());
          auto h = caf::actor_cast<caf::actor>(*pool);
          // CAF's connect may block past connect_timeout_ms (a partitioned
          // host): the supervisor gave up on this start and began another.
          if (!dir->put_if_latest(name, start, node_kind::pool, h)) {
            caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
            return make_error(errc::startup_failed,
                              fmt::format("a later reconnect of '{}' replaced this one", name));
          }
          return h;
        };
        spec.start_timeout = node.start_timeout;
        break;
      }
      if (!node.cluster.members.empty()) {
        // Members are looked up by name each time one (re)joins: a restarted
        // member is a new actor.
        spec.start = [opts = node.cluster, dir, name](caf::actor_system& sys)
          -> caf::expected<caf::actor> {
          auto resolve = [dir](const std::string& member) -> std::optional<pool_actor> {
            tree_directory::entry e;
            if (!dir->get(member, e) || e.kind != node_kind::pool || !e.handle)
              return std::nullopt;
            return caf::actor_cast<pool_actor>(e.handle);
          };
          auto h = caf::actor_cast<caf::actor>(spawn_cluster_pool(sys, opts, resolve));
          dir->put(name, node_kind::pool, h);
          return h;
        };
        break;
      }
      spec.start = [cfg = node.pool, dir, name](caf::actor_system& sys)
        -> caf::expected<caf::actor> {
        auto pool = spawn_pool(sys, cfg);
        if (!pool)
          return std::move(pool.error());
        auto h = caf::actor_cast<caf::actor>(*pool);
        dir->put(name, node_kind::pool, h);
        return h;
      };
      spec.await_ready = probe_ready<pool_actor, pool_status>;
      break;
    }
    case node_kind::actor: {
      const auto* reg = registry != nullptr ? registry->find(node.actor_kind) : nullptr;
      spec.start = [f = reg ? reg->make : actor_registry::context_factory{},
                    kind = node.actor_kind, ctx = actor_context{name, node.args},
                    dir](caf::actor_system& sys) -> caf::expected<caf::actor> {
        if (!f)
          return make_error(errc::bad_config,
                            fmt::format("actor kind '{}' is not registered", kind));
        auto h = f(sys, ctx);
        if (h && *h)
          dir->put(ctx.name, node_kind::actor, *h);
        return h;
      };
      // A factory may block (it is the user's code): it runs off the
      // supervisor's thread, bounded by the node's start_timeout_ms.
      spec.start_timeout = node.start_timeout;
      if (reg != nullptr && reg->readiness == actor_readiness::await_ready)
        spec.await_ready = probe_ready<caf::actor, bool>;
      break;
    }
  }
  return spec;
}

supervisor_config make_supervisor_config(const tree_node& node, const directory_ptr& dir,
                                         const actor_registry* registry) {
  supervisor_config cfg;
  cfg.name = node.name;
  cfg.strategy = node.strategy;
  cfg.intensity = node.intensity;
  cfg.backoff = node.backoff;
  cfg.shutdown_when = node.shutdown_when;
  cfg.max_children = node.max_children;
  if (!node.child_template.empty())
    dir->put_template(node.name, {node.child_template.front(), registry});
  for (auto& child : node.children)
    cfg.children.push_back(make_child(child, dir, registry));
  return cfg;
}

/// Resolves every pool's interpreter once, before anything starts, so pools
/// (re)started by supervisors never block on it; gives each pool the tree's
/// runtime directory.
caf::error prepare(tree_node& node, const std::string& runtime) {
  if (node.is_local_pool()) {
    auto python = locate_python(node.pool.python);
    if (!python) {
      auto info = describe(python.error());
      return make_error(errc::startup_failed,
                        fmt::format("pool {}: {}", node.name, info.message));
    }
    node.pool.python = *python;
    // Code comes from these directories: one another user could write to
    // would let them run code as us. Warn (the operator may mean it).
    for (auto& dir : node.pool.python_path)
      if (auto why = detail::unsafe_path_reason(dir, false); !why.empty())
        detail::log_warning(node.name, "python_path {} could be changed by another local user "
                            "({}): anything they put there runs in this pool's workers",
                            dir, why);
    node.pool.runtime_dir = runtime;
  }
  for (auto& child : node.children)
    if (auto err = prepare(child, runtime))
      return err;
  for (auto& child : node.child_template)
    if (auto err = prepare(child, runtime))
      return err;
  return caf::none;
}

} // namespace

caf::expected<caf::actor> running_tree::lookup(const std::string& name,
                                               node_kind kind) const {
  tree_directory::entry e;
  if (directory_ && directory_->stopped())
    return make_error(errc::pool_stopped,
                      fmt::format("the tree '{}' was stopped; start it again for new handles",
                                  name_));
  if (!directory_ || !directory_->get(name, e) || e.kind != kind) {
    const char* what = kind == node_kind::pool         ? "pool"
                       : kind == node_kind::supervisor ? "supervisor"
                                                       : "actor";
    return make_error(errc::bad_config,
                      fmt::format("the tree has no running {} named '{}'", what, name));
  }
  return e.handle;
}

caf::expected<caf::actor> running_tree::start_child(const std::string& supervisor,
                                                   const std::string& id, value::map args) {
  auto sup = this->supervisor(supervisor);
  if (!sup)
    return std::move(sup.error());
  tree_directory::dynamic_template t;
  if (!directory_->get_template(supervisor, t))
    return make_error(errc::bad_arguments,
                      fmt::format("supervisor '{}' is not dynamic: it has no template to make "
                                  "children from",
                                  supervisor));
  if (id.empty() || id.find('/') != std::string::npos)
    return make_error(errc::bad_arguments, "a child id must be non-empty and contain no '/'");
  tree_directory::entry taken;
  if (directory_->get(id, taken))
    return make_error(errc::already_present,
                      fmt::format("the tree already has a node named '{}'", id));
  auto node = t.node;
  node.name = id;
  if (node.kind == node_kind::pool)
    node.pool.name = id;
  for (auto& [key, x] : args)
    node.args[key] = x;
  auto spec = make_child(node, directory_, t.registry);
  caf::scoped_actor self{*sys_};
  caf::expected<caf::actor> out{caf::error{}};
  self->request(*sup, caf::infinite, start_child_atom::value, std::move(spec))
    .receive([&](caf::actor& h) { out = std::move(h); },
             [&](caf::error& e) { out = std::move(e); });
  return out;
}

caf::expected<pool_actor> running_tree::pool(const std::string& name) const {
  auto h = lookup(name, node_kind::pool);
  if (!h)
    return std::move(h.error());
  return caf::actor_cast<pool_actor>(*h);
}

caf::expected<supervisor_actor> running_tree::supervisor(const std::string& name) const {
  auto h = lookup(name, node_kind::supervisor);
  if (!h)
    return std::move(h.error());
  return caf::actor_cast<supervisor_actor>(*h);
}

caf::expected<caf::actor> running_tree::actor(const std::string& name) const {
  return lookup(name, node_kind::actor);
}

struct tree_metrics {
  std::unique_ptr<status_server> server;
  std::string url;
};

std::string running_tree::metrics_url() const {
  return metrics_ && metrics_->server ? metrics_->url : std::string{};
}

tree_status running_tree::status(caf::timespan timeout) const {
  tree_status out;
  out.tree = name_;
  out.pid = static_cast<std::int32_t>(::getpid());
  if (sys_ == nullptr)
    return out;
  caf::scoped_actor self{*sys_};
  for (auto& name : pool_names_) {
    pool_status st;
    st.name = name;
    st.state = "down";
    if (auto handle = pool(name))
      self->request(*handle, timeout, status_atom::value)
        .receive([&](pool_status& answer) { st = std::move(answer); }, [](caf::error&) {});
    out.pools.push_back(std::move(st));
  }
  return out;
}

void running_tree::stop() {
  if (metrics_)
    metrics_->server.reset();
  if (directory_)
    directory_->mark_stopped();
  if (sys_ == nullptr || !root_)
    return;
  {
    caf::scoped_actor self{*sys_};
    self->monitor(root_);
    self->send_exit(root_, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
  }
  remove_private_dir(runtime_dir_);
  root_ = nullptr;
}

caf::expected<running_tree> start_tree(caf::actor_system& sys, const tree_spec& spec,
                                       const actor_registry* registry) {
  auto root_node = spec.root;
  running_tree tree;
  tree.sys_ = &sys;
  if (auto err = ensure_runtime_dir())
    return err;
  tree.runtime_dir_ = make_private_dir("tree-");
  if (auto err = prepare(root_node, tree.runtime_dir_)) {
    remove_private_dir(tree.runtime_dir_);
    return err;
  }
  tree.name_ = root_node.name;
  tree.pool_names_ = pool_names(root_node);
  tree.directory_ = std::make_shared<tree_directory>();
  tree.root_ = spawn_supervisor(sys, make_supervisor_config(root_node, tree.directory_, registry));
  tree.directory_->put(root_node.name, node_kind::supervisor,
                       caf::actor_cast<caf::actor>(tree.root_));
  caf::scoped_actor self{sys};
  caf::error failure;
  // A root that fails before it sees the request is gone by then: its exit
  // reason (startup_failed naming the child) is the answer, not
  // request_receiver_down.
  self->monitor(tree.root_);
  self->request(tree.root_, caf::infinite, ready_atom::value)
    .receive([](bool) {}, [&](caf::error& err) { failure = std::move(err); });
  if (failure == caf::sec::request_receiver_down)
    self->receive([&](const caf::down_msg& msg) {
      if (msg.reason)
        failure = msg.reason;
    });
  self->demonitor(tree.root_.address());
  if (failure) {
    tree.stop();
    return failure;
  }
  if (spec.metrics.enabled) {
    // The source is a copy made before the server exists: no cycle.
    status_server::options opts;
    opts.http.bind = spec.metrics.bind;
    opts.http.port = spec.metrics.port;
    if (!spec.metrics.token_file.empty()) {
      auto token = read_token_file(spec.metrics.token_file, "metrics.token_file");
      if (!token) {
        tree.stop();
        return std::move(token.error());
      }
      opts.http.token = std::move(*token);
    }
    opts.http.max_connections = spec.metrics.max_connections;
    opts.http.max_connections_per_client = spec.metrics.max_connections_per_client;
    opts.http.request_timeout = std::chrono::milliseconds{spec.metrics.request_timeout_ms};
    opts.http.write_timeout = std::chrono::milliseconds{spec.metrics.write_timeout_ms};
    opts.metrics_path = spec.metrics.path;
    auto server = status_server::start(opts, [snapshot = tree] { return snapshot.status(); });
    if (!server) {
      tree.stop();
      return std::move(server.error());
    }
    tree.metrics_ = std::make_shared<tree_metrics>();
    tree.metrics_->url = (*server)->base_url() + spec.metrics.path;
    tree.metrics_->server = std::move(*server);
    detail::log_info(root_node.name, "metrics at {} (also /status, /diagnosis)",
                     tree.metrics_->url);
  }
  detail::log_info(root_node.name, "tree from {} started", spec.source);
  return tree;
}

} // namespace snakepit
