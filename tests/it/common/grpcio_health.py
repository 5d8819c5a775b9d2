"""The reference gRPC health service (grpcio + grpcio-health-checking from
PyPI) for tests/it/grpc_prober.rs and tests/it/blackbox_compat.rs.

Two plaintext servers on 127.0.0.1, ports chosen by the kernel:
- one with grpc_health.v1's HealthServicer: "", "serving.Svc" and
  "service1" SERVING,
  "down.Svc" NOT_SERVING (any other service: NOT_FOUND);
- one with no service at all (every call: UNIMPLEMENTED).

Prints "PORTS <health> <bare>" once both serve, then runs until killed or
until its stdin closes (so it never outlives the test that started it).
"""

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("serving.Svc", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("down.Svc", health_pb2.HealthCheckResponse.NOT_SERVING)
    # The service Debian's packaged blackbox.yml asks for (module grpc_plain).
    servicer.set("service1", health_pb2.HealthCheckResponse.SERVING)

    with_health = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, with_health)
    health_port = with_health.add_insecure_port("127.0.0.1:0")

    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    bare_port = bare.add_insecure_port("127.0.0.1:0")

    with_health.start()
    bare.start()
    print(f"PORTS {health_port} {bare_port}", flush=True)
    # EOF on stdin: the test (and its pipe) is gone.
    sys.stdin.read()
    with_health.stop(0)
    bare.stop(0)


if __name__ == "__main__":
    main()
