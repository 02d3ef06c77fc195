// What the plugin prints by itself: the VERSION answer, and the CNI error object (spec 1.1,
// "Error") when the agent cannot answer. Everything else it prints is the agent's.
#pragma once

#include <string>
#include <string_view>

namespace overlay::cni {

// The versions this plugin speaks; SUPPORTED_VERSIONS in src/cni/config.ts says the same (a test
// compares them).
inline constexpr std::string_view kCurrentVersion = "1.1.0";
inline constexpr std::string_view kSupportedVersions[] = {"0.4.0", "1.0.0", "1.1.0"};

// CNI error codes the plugin itself answers with (CNI_ERR in src/agent/protocol.ts).
inline constexpr int kErrDecode = 6;
inline constexpr int kErrInvalidConfig = 7;
inline constexpr int kErrTryAgainLater = 11;
inline constexpr int kErrNotAvailable = 50;

bool IsSupportedVersion(std::string_view v);

// {"cniVersion":"1.1.0","supportedVersions":[...]} and a newline.
std::string VersionJson();

// The spec's error object and a newline; an empty `details` is left out.
std::string ErrorJson(std::string_view cni_version, int code, std::string_view msg,
                      std::string_view details);

// The exit status for an error with CNI code `code`: the code itself where it fits (1..255),
// else 1. The agent applies the same rule (exitCodeFor in src/cni/result.ts).
int ExitCodeFor(int code);

}  // namespace overlay::cni
