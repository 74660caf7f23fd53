import type * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

/**
 * One unary call to the runner's service with grpc-js (an implementation independent of the
 * gateway's Connect client): what a compromised gateway, or anything else that can open the
 * socket, could send.
 */
export function grpcUnary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: string,
  input: I,
  output: O,
  message: MessageShape<I>,
  options: grpc.CallOptions = {},
): Promise<MessageShape<O>> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      `/oauth3.runner.v1.VaultRunnerService/${method}`,
      (m: MessageShape<I>) => Buffer.from(toBinary(input, m)),
      (b: Buffer) => fromBinary(output, b),
      message,
      options,
      (err, value) => (err ? reject(err) : resolve(value!)),
    );
  });
}
