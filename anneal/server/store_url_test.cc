// Choosing the store by URL: sqlite:// paths, memory:, and a clear refusal
// of anything else.
#include "anneal/server/store_url.h"

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/test_dir.h"

namespace anneal {
namespace {

absl::Status Put(Store& store) {
  v1::Schedule s;
  s.set_name("schedules/a");
  s.add_timeline();
  WriteBatch batch;
  batch.Put(s);
  return SubmitAndWait(store, std::move(batch));
}

TEST(StoreUrlTest, SqliteUrlsNameTheFile) {
  const std::string path = TestDir() + "a.db";
  {
    auto store = OpenStore("sqlite://" + path);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(Put(**store).ok());
  }
  auto again = OpenStore("sqlite://" + path);  // an absolute path: sqlite:///
  ASSERT_TRUE(again.ok());
  auto all = (*again)->LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST(StoreUrlTest, MemoryKeepsNothing) {
  auto store = OpenStore("memory:");
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(Put(**store).ok());
  EXPECT_EQ((*store)->LoadAll()->size(), 1u);
}

TEST(StoreUrlTest, OtherUrlsAreRefusedNamingTheFlag) {
  for (const char* url : {"postgres://db/anneal", "sqlite:", "anneal.db", ""}) {
    auto store = OpenStore(url);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_EQ(store.status().message().substr(0, 9), "--store: ") << url;
  }
}

}  // namespace
}  // namespace anneal
