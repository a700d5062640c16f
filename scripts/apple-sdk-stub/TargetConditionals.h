/* A stand-in for the one Apple SDK header ring's C code includes, so that
 * scripts/check-platforms.sh can compile-check Torque for macOS on Linux
 * without Apple's SDK. It is never used to build a binary that runs: the
 * objects built with it are only type-checked against, not linked. */
#pragma once
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
