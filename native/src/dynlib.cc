#include "dynlib.h"

#include <dlfcn.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace aerie {

std::vector<std::string> LibrarySearchPath() {
  std::vector<std::string> dirs;
  auto split = [&](const char* value) {
    if (!value) return;
    std::string s(value);
    size_t start = 0;
    while (start <= s.size()) {
      size_t end = s.find(':', start);
      if (end == std::string::npos) end = s.size();
      if (end > start) dirs.push_back(s.substr(start, end - start));
      start = end + 1;
    }
  };
  split(std::getenv("AERIE_CUDA_LIB_PATH"));
  if (const char* home = std::getenv("CUDA_HOME")) dirs.push_back(std::string(home) + "/lib64");
  dirs.push_back("/usr/local/cuda/lib64");
  dirs.push_back("/usr/lib/x86_64-linux-gnu");
  return dirs;
}

void* OpenLibrary(const std::vector<std::string>& names) {
  static std::mutex mu;
  static std::map<std::string, void*> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto hit = cache.find(names.at(0));
  if (hit != cache.end()) return hit->second;

  std::ostringstream tried;
  for (const auto& dir : LibrarySearchPath()) {
    for (const auto& name : names) {
      std::string path = dir + "/" + name;
      if (void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return cache[names[0]] = h;
      const char* err = dlerror();
      tried << "\n  " << path << ": " << (err ? err : "not found");
    }
  }
  for (const auto& name : names) {  // the system loader's own search path
    if (void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL)) return cache[names[0]] = h;
    const char* err = dlerror();
    tried << "\n  " << name << " (system loader path): " << (err ? err : "not found");
  }
  std::ostringstream msg;
  msg << "cannot load " << names[0] << "; tried:" << tried.str()
      << "\nInstall it or point AERIE_CUDA_LIB_PATH at the folder that holds it.";
  throw std::runtime_error(msg.str());
}

void* LoadSymbol(void* handle, const char* library, const char* symbol) {
  dlerror();
  void* sym = dlsym(handle, symbol);
  if (!sym) {
    const char* err = dlerror();
    throw std::runtime_error(std::string("symbol ") + symbol + " not found in " + library + ": " +
                             (err ? err : "unknown error"));
  }
  return sym;
}

}  // namespace aerie
