// Watchers' queues (see watch_hub.h).
#include "anneal/server/registry/watch_hub.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace anneal {

namespace {

// A change that gives a schedule a new state (and so a new membership).
bool Revises(const v1::WatchEvent& event) {
  return event.kind() == v1::WatchEvent::CREATED ||
         event.kind() == v1::WatchEvent::UPDATED ||
         event.kind() == v1::WatchEvent::RESTARTED;
}

}  // namespace

void WatchHub::Watcher::Start(std::vector<std::string> existing) {
  {
    absl::MutexLock lock(&mu_);
    if (started_) return;
    started_ = true;
    if (!ended_) {
      absl::flat_hash_set<std::string> listed(existing.begin(), existing.end());
      for (std::string& name : existing) catch_up_.push_back(std::move(name));
      // Names the caller knew that no longer match or exist: DELETED.
      for (const auto& [name, revision] : since_) {
        if (!listed.contains(name)) catch_up_.push_back(name);
      }
      catching_up_.insert(catch_up_.begin(), catch_up_.end());
    }
  }
  wake_();
}

std::optional<v1::WatchEvent> WatchHub::Watcher::Pop() {
  absl::MutexLock lock(&mu_);
  if (!started_) return std::nullopt;
  while (!catch_up_.empty()) {
    const std::string name = std::move(catch_up_.front());
    catch_up_.pop_front();
    catching_up_.erase(name);
    // Built without the lock: it reads the registry.
    mu_.Unlock();
    std::optional<v1::WatchEvent> event = current_(name);
    mu_.Lock();
    const auto since = since_.find(name);
    // One that no longer matches the filter is gone, to this watcher.
    if (event && names_.empty() &&
        !filter_.Matches(event->schedule().labels())) {
      event.reset();
    }
    if (!event) {
      if (since == since_.end()) continue;  // gone, and never known
      v1::WatchEvent deleted;
      deleted.set_kind(v1::WatchEvent::DELETED);
      deleted.set_name(name);
      deleted.set_revision(since->second);
      return deleted;
    }
    int64_t& sent = sent_[name];
    sent = std::max(sent, event->revision());
    if (names_.empty()) members_.insert(name);
    if (since != since_.end() && since->second >= event->revision()) continue;
    return event;
  }
  if (!synced_) {
    synced_ = true;
    since_.clear();
    v1::WatchEvent synced;
    synced.set_kind(v1::WatchEvent::SYNCED);
    return synced;
  }
  while (!live_.empty()) {
    v1::WatchEvent event = std::move(live_.front());
    live_.pop_front();
    auto sent = sent_.find(event.name());
    // CYCLE and REPORTED keep the revision; DELETED ends it.
    const bool revises = Revises(event);
    if (revises && sent != sent_.end() && sent->second >= event.revision()) {
      continue;  // the catch-up already showed this revision
    }
    if (event.kind() == v1::WatchEvent::DELETED) {
      auto known = sent_.find(event.name());
      if (known != sent_.end()) {
        event.set_revision(known->second);
        sent_.erase(known);
      }
    } else if (revises) {
      sent_[event.name()] = event.revision();
    }
    return event;
  }
  return std::nullopt;
}

std::optional<absl::Status> WatchHub::Watcher::ended() const {
  absl::MutexLock lock(&mu_);
  // Only once its events are out: an overflow drops the queue itself.
  if (!ended_) return std::nullopt;
  if (!catch_up_.empty() || !synced_ || !live_.empty()) return std::nullopt;
  return ended_;
}

bool WatchHub::Watcher::Wants(const std::string& name,
                              const Labels* labels) const {
  if (!names_.empty()) return names_.contains(name);
  if (labels == nullptr) {
    return members_.contains(name) || catching_up_.contains(name);
  }
  return filter_.Matches(*labels);
}

std::optional<v1::WatchEvent> WatchHub::Watcher::Left(
    const v1::WatchEvent& event, const Labels* labels) {
  if (!names_.empty() || labels == nullptr || !Revises(event)) {
    return std::nullopt;
  }
  // The catch-up checks the filter itself when it gets to a name.
  if (members_.erase(event.name()) == 0) return std::nullopt;
  v1::WatchEvent deleted;  // Pop sets the revision it last showed
  deleted.set_kind(v1::WatchEvent::DELETED);
  deleted.set_name(event.name());
  return deleted;
}

absl::StatusOr<std::shared_ptr<WatchHub::Watcher>> WatchHub::Add(
    const v1::WatchSchedulesRequest& request,
    std::function<std::optional<v1::WatchEvent>(const std::string&)> current,
    std::function<void()> wake) {
  auto filter = LabelFilter::Parse(request.filter());
  if (!filter.ok()) return filter.status();
  auto watcher = std::make_shared<Watcher>();
  watcher->names_.insert(request.names().begin(), request.names().end());
  watcher->filter_ = *std::move(filter);
  watcher->include_reports_ = request.include_reports();
  watcher->current_ = std::move(current);
  watcher->max_queue_ = static_cast<size_t>(options_.max_queue);
  watcher->wake_ = std::move(wake);
  {
    absl::MutexLock lock(&watcher->mu_);
    watcher->since_.insert(request.since_revisions().begin(),
                           request.since_revisions().end());
  }
  absl::MutexLock lock(&mu_);
  if (ended_) return absl::UnavailableError("server: shutting down; retry");
  if (static_cast<int64_t>(watchers_.size()) >= options_.max_watchers) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "watch: the server has its limit of ", options_.max_watchers,
        " watchers (max_watchers); retry later"));
  }
  watchers_.push_back(watcher);
  count_.fetch_add(1, std::memory_order_relaxed);
  return watcher;
}

bool WatchHub::Matches(const v1::WatchSchedulesRequest& request,
                       const std::string& name, const LabelFilter& filter,
                       const Labels& labels) {
  if (request.names_size() > 0) {
    return std::find(request.names().begin(), request.names().end(), name) !=
           request.names().end();
  }
  return filter.Matches(labels);
}

void WatchHub::Remove(const std::shared_ptr<Watcher>& watcher) {
  absl::MutexLock lock(&mu_);
  for (auto it = watchers_.begin(); it != watchers_.end(); ++it) {
    if (*it == watcher) {
      watchers_.erase(it);
      count_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
  }
}

void WatchHub::Publish(const v1::WatchEvent& event, const Labels* labels) {
  if (!watched()) return;
  std::vector<std::shared_ptr<Watcher>> woken;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& w : watchers_) {
      absl::MutexLock watcher_lock(&w->mu_);
      if (w->ended_) continue;
      std::optional<v1::WatchEvent> left;
      if (!w->Wants(event.name(), labels)) {
        left = w->Left(event, labels);
        if (!left) continue;
      }
      const v1::WatchEvent& sent = left ? *left : event;
      if (event.kind() == v1::WatchEvent::REPORTED && !w->include_reports_) {
        continue;
      }
      if (w->live_.size() >= w->max_queue_) {
        w->live_.clear();
        w->catch_up_.clear();
        w->catching_up_.clear();
        w->synced_ = true;
        w->ended_ = absl::ResourceExhaustedError(
            absl::StrCat("watch: the client fell more than ", w->max_queue_,
                         " events behind (watch_queue_events); reconnect with "
                         "since_revisions to resume"));
      } else {
        w->live_.push_back(sent);
        if (w->names_.empty() && Revises(sent)) {
          w->members_.insert(sent.name());
        } else if (sent.kind() == v1::WatchEvent::DELETED) {
          w->members_.erase(sent.name());
        }
      }
      woken.push_back(w);
    }
  }
  for (const auto& w : woken) w->wake_();
}

void WatchHub::EndAll(const absl::Status& status) {
  std::vector<std::shared_ptr<Watcher>> woken;
  {
    absl::MutexLock lock(&mu_);
    ended_ = true;
    for (const auto& w : watchers_) {
      absl::MutexLock watcher_lock(&w->mu_);
      // At once: what is queued is not sent.
      w->catch_up_.clear();
      w->catching_up_.clear();
      w->live_.clear();
      w->synced_ = true;
      if (!w->ended_) w->ended_ = status;
      woken.push_back(w);
    }
  }
  for (const auto& w : woken) w->wake_();
}

}  // namespace anneal
