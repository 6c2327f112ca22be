//===- quant-onnx-conformance.cpp - ONNX backend node tests on the CPU -----===//
// Runs every node test of ONNX's own suite (Debian's libonnx-testdata) whose
// operators the importer covers through import, CPU lowering and JIT, and
// prints per operator how many cases passed, were refused with an error, or
// failed (wrong numbers, a crash, an error after a successful import). Each
// case runs in a forked child with a timeout, so one crash costs one case.
//===----------------------------------------------------------------------===//

#include "Conformance.h"

#include "quant-mlir/Target/ONNX/ImportONNX.h"

#include "quant-mlir/InitAllDialects.h"
#include "quant-mlir/Quant/BLASKernels.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>

using namespace llvm;
using namespace quant_mlir;
using namespace quant_mlir::conformance;
using Clock = std::chrono::steady_clock;

static cl::OptionCategory category("quant-onnx-conformance options");
static cl::opt<std::string>
    dataDir(cl::Positional, cl::desc("<node test directory>"),
            cl::init("/usr/share/libonnx-testdata/data/node"),
            cl::cat(category));
static cl::opt<std::string>
    filter("filter", cl::desc("Only cases whose name matches this regex"),
           cl::value_desc("regex"), cl::cat(category));
static cl::list<std::string>
    opsOverride("ops", cl::CommaSeparated,
                cl::desc("Coverage list to use instead of the built-in one"),
                cl::value_desc("Op,Op,..."), cl::cat(category));
static cl::opt<unsigned> jobs("j", cl::init(2),
                              cl::desc("Cases run at the same time"),
                              cl::cat(category));
static cl::opt<double> timeoutSecs("timeout", cl::init(60),
                                   cl::desc("Seconds one case may take"),
                                   cl::cat(category));
static cl::opt<double> rtolOpt("rtol", cl::init(1e-5),
                            cl::desc("Relative float tolerance"),
                            cl::cat(category));
static cl::opt<double> atolOpt("atol", cl::init(1e-6),
                            cl::desc("Absolute float tolerance floor"),
                            cl::cat(category));
static cl::opt<unsigned>
    optLevel("jit-opt", cl::init(0),
             cl::desc("LLVM optimization level of the JIT (0-3)"),
             cl::cat(category));
static cl::opt<bool> noFork("no-fork",
                            cl::desc("Run cases in this process (debugging; "
                                     "a crash ends the run)"),
                            cl::cat(category));
static cl::opt<bool> probeCoverage(
    "probe-coverage", cl::init(true),
    cl::desc("Also import one node test of each operator outside the "
             "coverage list, to find operators the importer handles that the "
             "list lacks (an error in check mode)"),
    cl::cat(category));
// The runner's own tests use this to check that a crashing case costs only
// itself.
static cl::opt<std::string>
    debugCrash("debug-crash", cl::Hidden,
               cl::desc("Abort in the child of cases matching this regex"),
               cl::cat(category));
static cl::opt<bool> verbose("v", cl::desc("One line per case"),
                             cl::cat(category));
static cl::opt<std::string> csvOut("csv",
                                   cl::desc("Write the operator table as CSV"),
                                   cl::value_desc("file"), cl::cat(category));
static cl::opt<std::string>
    jsonOut("json", cl::desc("Write every case's result as JSON"),
            cl::value_desc("file"), cl::cat(category));
static cl::opt<std::string> expectedRefusals(
    "expected-refusals",
    cl::desc("Fail unless exactly the cases listed here (name reason) are "
             "refused"),
    cl::value_desc("file"), cl::cat(category));
static cl::opt<std::string> knownFailures(
    "known-failures",
    cl::desc("Fail unless exactly the cases listed here (name reason) fail"),
    cl::value_desc("file"), cl::cat(category));

static cl::opt<bool> updateLists(
    "update-lists",
    cl::desc("Rewrite the --expected-refusals / --known-failures files to "
             "match this run (kept comments and reasons; a new entry's reason "
             "is its message), then check as usual"),
    cl::cat(category));

/// The operators the importer handles (lib/Target/ONNX/Ops.cpp). The importer
/// has no API listing them yet; once its handler table exposes one, this list
/// should come from it.

static int fatal(const Twine &msg) {
  errs() << "quant-onnx-conformance: error: " << msg << "\n";
  return 2;
}

/// The node test directories in scope, sorted by name; `probes` gets the
/// single-node cases of other operators.
static Expected<std::vector<TestCase>>
discover(const StringSet<> &covered, std::vector<TestCase> &probes) {
  std::vector<std::string> dirs;
  std::error_code ec;
  for (sys::fs::directory_iterator it(dataDir, ec), end; it != end && !ec;
       it.increment(ec)) {
    SmallString<256> model(it->path());
    sys::path::append(model, "model.onnx");
    if (sys::fs::exists(model))
      dirs.push_back(it->path());
  }
  if (ec)
    return createStringError(ec, "cannot list '" + dataDir +
                                     "': " + ec.message());
  llvm::sort(dirs);
  std::vector<TestCase> all;
  for (const std::string &dir : dirs) {
    auto tc = loadTestCase(dir);
    if (!tc)
      return tc.takeError();
    all.push_back(std::move(*tc));
  }
  // test_X_expanded is test_X's function body in primitive nodes: it is
  // named after test_X's operator.
  StringMap<std::string> opOf;
  for (const TestCase &tc : all)
    if (!tc.op.empty())
      opOf[tc.name] = tc.op;
  std::optional<Regex> re;
  if (!filter.empty()) {
    re.emplace(filter);
    std::string err;
    if (!re->isValid(err))
      return createStringError(inconvertibleErrorCode(),
                               "bad --filter: " + err);
  }
  std::vector<TestCase> cases;
  StringMap<size_t> probeOf;
  for (TestCase &tc : all) {
    StringRef name = tc.name;
    if (name.consume_back("_expanded") || tc.op.empty()) {
      auto it = opOf.find(name);
      tc.op = (it != opOf.end() ? it->second : std::string("?")) +
              " (expanded)";
    }
    if (re && !re->match(tc.name))
      continue;
    if (tc.nodeOps.empty() ||
        !llvm::all_of(tc.nodeOps, [&](const std::string &op) {
          return covered.contains(op);
        })) {
      // One probe per operator, of its newest opset (older opsets are
      // refused before any node is looked at).
      if (probeCoverage && tc.nodeOps.size() == 1 &&
          !StringRef(tc.op).ends_with(" (expanded)")) {
        tc.probeOnly = true;
        auto it = probeOf.find(tc.op);
        if (it == probeOf.end())
          probeOf[tc.op] = probes.size(), probes.push_back(std::move(tc));
        else if (tc.opset > probes[it->second].opset)
          probes[it->second] = std::move(tc);
      }
      continue;
    }
    cases.push_back(std::move(tc));
  }
  return cases;
}

/// The lines of a crashed child's stderr that say why (not the stack dump).
static std::string crashExcerpt(StringRef errFile) {
  auto buffer = MemoryBuffer::getFile(errFile);
  if (!buffer)
    return "";
  SmallVector<StringRef> lines;
  (*buffer)->getBuffer().split(lines, '\n', -1, false);
  std::string out;
  for (StringRef line : lines) {
    StringRef t = line.trim();
    if (t.empty() || t.starts_with("#") || t.starts_with("Stack dump") ||
        t.starts_with("PLEASE submit") || t.starts_with("0.") ||
        t.contains("LLVMSymbolizer"))
      continue;
    if (!out.empty())
      out += " | ";
    out += t.str();
    if (out.size() > 400)
      break;
  }
  return out;
}

namespace {
struct Child {
  size_t index;
  pid_t pid;
  int fd;
  std::string dir;
  Clock::time_point deadline;
  std::string output;
};
} // namespace

/// Runs the cases `jobs` at a time, each in a forked child that writes its
/// CaseResult as JSON to a pipe; crashes and timeouts become failures.
static std::vector<CaseResult> runAll(const std::vector<TestCase> &cases,
                                      mlir::MLIRContext &context,
                                      const RunOptions &options) {
  std::vector<CaseResult> results(cases.size());
  auto report = [&](size_t i) {
    if (verbose)
      outs() << statusName(results[i].status) << " " << cases[i].name
             << format(" (%.2f s)", results[i].seconds)
             << (results[i].message.empty() ? "" : ": ")
             << results[i].message << "\n";
  };
  auto makeDir = [&](size_t i, std::string &dir) -> bool {
    SmallString<128> path;
    if (sys::fs::createUniqueDirectory("quant-onnx-conformance", path)) {
      results[i] = {cases[i].name, cases[i].op, Status::Failed, "run",
                    "cannot create a temporary directory", 0};
      return false;
    }
    dir = path.str().str();
    return true;
  };

  if (noFork) {
    for (size_t i = 0; i < cases.size(); ++i) {
      std::string dir;
      if (makeDir(i, dir)) {
        results[i] = runCase(cases[i], context, dir, options);
        sys::fs::remove_directories(dir);
      }
      report(i);
    }
    return results;
  }

  std::vector<Child> running;
  size_t next = 0;
  while (next < cases.size() || !running.empty()) {
    while (next < cases.size() && running.size() < std::max(1u, unsigned(jobs))) {
      size_t i = next++;
      std::string dir;
      if (!makeDir(i, dir)) {
        report(i);
        continue;
      }
      int fds[2];
      if (pipe(fds) != 0) {
        results[i] = {cases[i].name, cases[i].op, Status::Failed, "run",
                      "pipe failed", 0};
        continue;
      }
      // Nothing buffered may be inherited: the child would print it again.
      outs().flush();
      errs().flush();
      pid_t pid = fork();
      if (pid == 0) {
        close(fds[0]);
        // The child's own output (JIT, diagnostics, a crash's stack dump)
        // goes to a file the parent reads on a crash.
        std::string errFile = dir + "/stderr.txt";
        int err = open(errFile.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (err >= 0) {
          dup2(err, 1);
          dup2(err, 2);
          close(err);
        }
        if (!debugCrash.empty() && Regex(debugCrash).match(cases[i].name))
          abort();
        CaseResult r = runCase(cases[i], context, dir, options);
        std::string text;
        raw_string_ostream(text) << json::Value(toJSON(r));
        for (size_t off = 0; off < text.size();) {
          ssize_t n = write(fds[1], text.data() + off, text.size() - off);
          if (n <= 0)
            break;
          off += size_t(n);
        }
        _exit(0);
      }
      close(fds[1]);
      if (pid < 0) {
        close(fds[0]);
        results[i] = {cases[i].name, cases[i].op, Status::Failed, "run",
                      "fork failed", 0};
        sys::fs::remove_directories(dir);
        continue;
      }
      running.push_back({i, pid, fds[0], dir,
                         Clock::now() + std::chrono::milliseconds(
                                            int64_t(timeoutSecs * 1000)),
                         ""});
    }

    std::vector<pollfd> polls;
    auto soonest = Clock::time_point::max();
    for (const Child &c : running) {
      polls.push_back({c.fd, POLLIN, 0});
      soonest = std::min(soonest, c.deadline);
    }
    int wait = int(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(
               soonest - Clock::now())
               .count()));
    poll(polls.data(), polls.size(), wait);

    for (size_t k = 0; k < running.size();) {
      Child &c = running[k];
      const TestCase &tc = cases[c.index];
      CaseResult &r = results[c.index];
      bool done = false;
      if (polls[k].revents) {
        char buf[4096];
        ssize_t n = read(c.fd, buf, sizeof(buf));
        if (n > 0)
          c.output.append(buf, size_t(n));
        else
          done = true;
      }
      if (!done && Clock::now() >= c.deadline) {
        kill(c.pid, SIGKILL);
        int st;
        waitpid(c.pid, &st, 0);
        r = {tc.name, tc.op, Status::Failed, "timeout",
             formatv("no result after {0} s", double(timeoutSecs)).str(),
             timeoutSecs};
      } else if (done) {
        int st = 0;
        waitpid(c.pid, &st, 0);
        auto parsed = json::parse(c.output);
        json::Path::Root root;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && parsed &&
            fromJSON(*parsed, r, root)) {
          // r holds the child's result.
        } else {
          if (!parsed)
            consumeError(parsed.takeError());
          std::string why =
              WIFSIGNALED(st)
                  ? "crashed with signal " + std::to_string(WTERMSIG(st)) +
                        " (" + strsignal(WTERMSIG(st)) + ")"
                  : "exited with status " + std::to_string(WEXITSTATUS(st));
          std::string excerpt = crashExcerpt(c.dir + "/stderr.txt");
          r = {tc.name, tc.op, Status::Failed, "crash",
               why + (excerpt.empty() ? "" : ": " + excerpt), 0};
        }
      } else {
        ++k;
        continue;
      }
      close(c.fd);
      sys::fs::remove_directories(c.dir);
      report(c.index);
      running.erase(running.begin() + k);
      polls.erase(polls.begin() + k);
    }
  }
  return results;
}

namespace {
struct Counts {
  int cases = 0, passed = 0, refused = 0, failed = 0;
  void add(Status s) {
    ++cases;
    (s == Status::Passed    ? passed
     : s == Status::Refused ? refused
                            : failed)++;
  }
};
} // namespace

static std::map<std::string, Counts>
tabulate(const std::vector<CaseResult> &results, Counts &total) {
  std::map<std::string, Counts> table;
  for (const CaseResult &r : results) {
    table[r.op].add(r.status);
    total.add(r.status);
  }
  return table;
}

static void printTable(raw_ostream &os,
                       const std::map<std::string, Counts> &table,
                       const Counts &total) {
  os << format("%-36s %6s %7s %8s %7s\n", "operator", "cases", "passed",
               "refused", "failed");
  auto row = [&](StringRef op, const Counts &c) {
    os << format("%-36s %6d %7d %8d %7d\n", op.str().c_str(), c.cases,
                 c.passed, c.refused, c.failed);
  };
  for (const auto &[op, c] : table)
    row(op, c);
  row("total", total);
}

/// "name reason..." lines; '#' starts a comment. Every entry needs a reason.
static Expected<std::map<std::string, std::string>> readList(StringRef path) {
  auto buffer = MemoryBuffer::getFile(path);
  if (!buffer)
    return createStringError(buffer.getError(),
                             "cannot read '" + path + "'");
  std::map<std::string, std::string> list;
  SmallVector<StringRef> lines;
  (*buffer)->getBuffer().split(lines, '\n');
  for (auto [no, line] : llvm::enumerate(lines)) {
    StringRef t = line.split('#').first.trim();
    if (t.empty())
      continue;
    auto [name, reason] = t.split(' ');
    if (reason.trim().empty())
      return createStringError(inconvertibleErrorCode(),
                               path + ":" + Twine(no + 1) + ": '" + name +
                                   "' has no reason");
    list[name.str()] = reason.trim().str();
  }
  return list;
}

/// Compares the results with the expected refusals and known failures.
static int checkLists(const std::vector<CaseResult> &results) {
  std::map<std::string, std::string> refusals, failures;
  for (auto [path, list] : {std::pair{&expectedRefusals, &refusals},
                            std::pair{&knownFailures, &failures}}) {
    if (path->empty())
      continue;
    auto l = readList(*path);
    if (!l) {
      errs() << "quant-onnx-conformance: error: " << toString(l.takeError())
             << "\n";
      return 1;
    }
    *list = std::move(*l);
  }
  int errors = 0;
  StringSet<> seen;
  auto complain = [&](const Twine &msg) {
    errs() << "conformance: " << msg << "\n";
    ++errors;
  };
  for (const CaseResult &r : results) {
    seen.insert(r.name);
    bool listedRefused = refusals.count(r.name);
    bool listedFailing = failures.count(r.name);
    if (r.status == Status::Refused && !listedRefused)
      complain(r.name + " is refused but not in --expected-refusals: " +
               r.message);
    if (r.status == Status::Failed && !listedFailing)
      complain(r.name + " FAILED (" + r.stage + "): " + r.message);
    if (r.status != Status::Refused && listedRefused)
      complain(r.name + " is listed as refused but " + statusName(r.status) +
               (r.message.empty() ? "" : ": " + r.message));
    if (r.status != Status::Failed && listedFailing)
      complain(r.name + " is listed as a known failure but " +
               statusName(r.status) + ": remove it from the list");
  }
  // Stale entries are only detectable on a full run.
  if (filter.empty())
    for (const auto *list : {&refusals, &failures})
      for (const auto &[name, reason] : *list)
        if (!seen.contains(name))
          complain(name + " is listed but is no case in scope");
  if (errors)
    errs() << "conformance: " << errors
           << " case(s) disagree with the expected lists\n";
  return errors ? 1 : 0;
}

/// Operators outside the coverage list that the importer handles: one of
/// their cases imported, or failed with an error about that node other than
/// "unsupported operator" (opset and dtype errors say nothing either way).
static std::map<std::string, std::string>
handledOutsideList(const std::vector<CaseResult> &probes) {
  std::map<std::string, std::string> handled;
  for (const CaseResult &r : probes) {
    StringRef msg = r.message;
    bool nodeError = msg.contains("(" + r.op + "): ") &&
                     !msg.contains("unsupported operator");
    if (r.status == Status::Passed || r.status == Status::Failed || nodeError)
      handled.emplace(r.op, r.name + ": " +
                                (r.status == Status::Passed ? "imported"
                                                            : r.message));
  }
  return handled;
}

/// Rewrites `path` so that it lists exactly the cases of `status`: comment
/// lines and the reasons of cases still listed stay, gone cases are dropped,
/// new ones are appended with their message as the reason.
static Error rewriteList(StringRef path,
                         const std::vector<CaseResult> &results,
                         Status status) {
  std::map<std::string, const CaseResult *> wanted;
  for (const CaseResult &r : results)
    if (r.status == status)
      wanted[r.name] = &r;
  std::string text;
  if (auto buffer = MemoryBuffer::getFile(path))
    text = (*buffer)->getBuffer().str();
  SmallVector<StringRef> lines;
  StringRef(text).split(lines, '\n');
  std::string out;
  for (StringRef line : lines) {
    StringRef name = line.split('#').first.trim().split(' ').first;
    if (!name.empty() && !wanted.erase(name.str()))
      continue;
    if (!line.empty() || !out.empty())
      out += line.str() + "\n";
  }
  while (StringRef(out).ends_with("\n\n"))
    out.pop_back();
  for (const auto &[name, r] : wanted)
    out += name + " " + r->stage + ": " + r->message + "\n";
  return writeToOutput(path, [&](raw_ostream &os) {
    os << out;
    return Error::success();
  });
}

static Error writeOutputs(const std::vector<CaseResult> &results,
                          const std::map<std::string, Counts> &table) {
  if (!csvOut.empty())
    if (Error err = writeToOutput(csvOut, [&](raw_ostream &os) {
          os << "operator,cases,passed,refused,failed\n";
          for (const auto &[op, c] : table)
            os << op << "," << c.cases << "," << c.passed << "," << c.refused
               << "," << c.failed << "\n";
          return Error::success();
        }))
      return err;
  if (!jsonOut.empty())
    if (Error err = writeToOutput(jsonOut, [&](raw_ostream &os) {
          json::Array cases;
          for (const CaseResult &r : results)
            cases.push_back(toJSON(r));
          json::Object ops;
          for (const auto &[op, c] : table)
            ops[op] = json::Object{{"cases", c.cases},
                                   {"passed", c.passed},
                                   {"refused", c.refused},
                                   {"failed", c.failed}};
          os << formatv("{0:2}", json::Value(json::Object{
                                     {"cases", std::move(cases)},
                                     {"operators", std::move(ops)}}))
             << "\n";
          return Error::success();
        }))
      return err;
  return Error::success();
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  quant_mlir::quant::configureBLASKernels();
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "quant-onnx-conformance: ONNX backend node tests through import, CPU "
      "lowering and JIT\n");
  auto start = Clock::now();

  StringSet<> covered;
  if (opsOverride.empty())
    for (const std::string &op : quant_mlir::onnx_import::supportedOperators())
      covered.insert(op);
  else
    for (const std::string &op : opsOverride)
      covered.insert(op);

  std::vector<TestCase> probes;
  auto cases = discover(covered, probes);
  if (!cases)
    return fatal(toString(cases.takeError()));
  if (cases->empty())
    return fatal("no node test in '" + dataDir + "' is in scope");

  // Everything each case needs but does not change is set up once here, so
  // the forked children share it: the dialects (loaded, single-threaded so
  // that forking is safe) and the JIT's native target.
  mlir::DialectRegistry registry;
  quant_mlir::registerAllDialects(registry);
  mlir::MLIRContext context(registry, mlir::MLIRContext::Threading::DISABLED);
  context.loadAllAvailableDialects();
  InitializeNativeTarget();
  InitializeNativeTargetAsmPrinter();

  RunOptions options;
  options.rtol = rtolOpt;
  options.atol = atolOpt;
  options.optLevel = optLevel;
  size_t numCases = cases->size();
  cases->insert(cases->end(), std::make_move_iterator(probes.begin()),
                std::make_move_iterator(probes.end()));
  std::vector<CaseResult> results = runAll(*cases, context, options);
  std::vector<CaseResult> probeResults(results.begin() + numCases,
                                       results.end());
  results.resize(numCases);

  Counts total;
  auto table = tabulate(results, total);
  printTable(outs(), table, total);
  for (Status s : {Status::Refused, Status::Failed}) {
    bool header = false;
    for (const CaseResult &r : results) {
      if (r.status != s)
        continue;
      if (!header)
        outs() << "\n" << statusName(s) << ":\n";
      header = true;
      std::string msg = r.message;
      if (msg.size() > 300)
        msg = msg.substr(0, 297) + "...";
      outs() << "  " << r.name << " [" << r.stage << "] " << msg << "\n";
    }
  }
  double secs =
      std::chrono::duration<double>(Clock::now() - start).count();
  outs() << "\nconformance: " << total.cases << " cases, " << total.passed
         << " passed, " << total.refused << " refused, " << total.failed
         << " failed" << format(" in %.1f s", secs) << " (rtol " << rtolOpt
         << ", atol " << atolOpt << ", -j " << jobs << ")\n";
  outs().flush();
  if (Error err = writeOutputs(results, table))
    return fatal(toString(std::move(err)));
  std::map<std::string, std::string> uncovered = handledOutsideList(probeResults);
  for (const auto &[op, example] : uncovered)
    errs() << "conformance: the importer handles " << op << " (" << example
           << ") but it is not in the coverage list\n";
  if (updateLists) {
    if (!filter.empty())
      return fatal("--update-lists needs a full run (no --filter)");
    for (auto [path, status] : {std::pair{&expectedRefusals, Status::Refused},
                                std::pair{&knownFailures, Status::Failed}})
      if (!path->empty())
        if (Error err = rewriteList(*path, results, status))
          return fatal(toString(std::move(err)));
  }
  bool check = !expectedRefusals.empty() || !knownFailures.empty();
  int rc = check ? checkLists(results) : 0;
  return check && !uncovered.empty() ? 1 : rc;
}
