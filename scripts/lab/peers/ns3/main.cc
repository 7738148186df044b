/* kaprobe lab peer: an echo server on ns-3's TCP (Debian libns3-dev, ns-3.37).
 *
 * Started by `scripts/lab.sh up NAME --peer ns3` in the server namespace, where the
 * namespace's veth is bridged with a TAP that this process drives (FdNetDevice on the
 * TAP's fd, real-time simulator):
 *   kaprobe-lab-ns3 --tap tap0 --ip 10.77.101.2/24 --gw 10.77.101.254 [--port 7077]
 *       [--status FILE]
 * IPv4 only. ns-3's TCP has no keepalive of its own; timestamps and SACK are on (its
 * defaults). Every accepted connection echoes what it receives and closes after the peer.
 */
#include "ns3/core-module.h"
#include "ns3/fd-net-device-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"

#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string>
#include <sys/ioctl.h>
#include <unistd.h>

using namespace ns3;

[[noreturn]] static void die(const std::string &what) {
    std::fprintf(stderr, "kaprobe-lab-ns3: %s\n", what.c_str());
    std::exit(2);
}

/* The TAP's fd, frames without the packet-information header. */
static int open_tap(const std::string &name) {
    int fd = open("/dev/net/tun", O_RDWR);
    if (fd < 0) die("cannot open /dev/net/tun");
    struct ifreq ifr;
    std::memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("cannot attach to TAP " + name);
    return fd;
}

static void closed(Ptr<Socket> s) { s->Close(); }

static void echo(Ptr<Socket> s) {
    Address from;
    while (Ptr<Packet> p = s->RecvFrom(from)) {
        if (p->GetSize() == 0) break;
        s->Send(p);
    }
}

static void accepted(Ptr<Socket> s, const Address &) {
    s->SetRecvCallback(MakeCallback(&echo));
    s->SetCloseCallbacks(MakeCallback(&closed), MakeCallback(&closed));
}

int main(int argc, char **argv) {
    std::string tap = "tap0", ip, gw, status;
    uint16_t port = 7077;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string k = argv[i], v = argv[i + 1];
        if (k == "--tap") tap = v;
        else if (k == "--ip") ip = v;
        else if (k == "--gw") gw = v;
        else if (k == "--port") port = static_cast<uint16_t>(std::stoi(v));
        else if (k == "--status") status = v;
        else if (k == "--ip6" || k == "--gw6") {} /* IPv4 only */
        else die("unknown option " + k + " (ns-3 has no keepalive to set)");
    }
    size_t slash = ip.find('/');
    if (slash == std::string::npos || gw.empty()) die("needs --ip A.B.C.D/N and --gw A.B.C.D");
    int bits = std::stoi(ip.substr(slash + 1));
    Ipv4Address addr(ip.substr(0, slash).c_str());

    GlobalValue::Bind("SimulatorImplementationType", StringValue("ns3::RealtimeSimulatorImpl"));
    GlobalValue::Bind("ChecksumEnabled", BooleanValue(true));

    Ptr<Node> node = CreateObject<Node>();
    FdNetDeviceHelper fd_helper;
    Ptr<FdNetDevice> dev = DynamicCast<FdNetDevice>(fd_helper.Install(node).Get(0));
    dev->SetFileDescriptor(open_tap(tap));
    dev->SetAddress(Mac48Address("02:00:00:77:01:02"));

    InternetStackHelper().Install(node);
    Ptr<Ipv4> ipv4 = node->GetObject<Ipv4>();
    uint32_t ifc = ipv4->AddInterface(dev);
    ipv4->AddAddress(ifc, Ipv4InterfaceAddress(addr, Ipv4Mask(("/" + std::to_string(bits)).c_str())));
    ipv4->SetMetric(ifc, 1);
    ipv4->SetUp(ifc);
    Ipv4StaticRoutingHelper routing;
    routing.GetStaticRouting(ipv4)->SetDefaultRoute(Ipv4Address(gw.c_str()), ifc);

    Ptr<Socket> listener = Socket::CreateSocket(node, TcpSocketFactory::GetTypeId());
    if (listener->Bind(InetSocketAddress(Ipv4Address::GetAny(), port)) != 0) die("cannot bind");
    listener->Listen();
    listener->SetAcceptCallback(MakeNullCallback<bool, Ptr<Socket>, const Address &>(), MakeCallback(&accepted));

    if (!status.empty()) {
        FILE *f = std::fopen(status.c_str(), "a");
        if (!f) die("cannot write " + status);
        std::fprintf(f, "{\"event\":\"listening\",\"stack\":\"ns3\",\"pid\":%d,\"addr\":\"%s\",\"port\":%u}\n",
                     static_cast<int>(getpid()), ip.substr(0, slash).c_str(), port);
        std::fclose(f);
    }
    Simulator::Stop(Seconds(365 * 24 * 3600.0));
    Simulator::Run();
    Simulator::Destroy();
    return 0;
}
