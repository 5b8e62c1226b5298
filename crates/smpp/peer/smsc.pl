#!/usr/bin/perl
# A small SMSC for waihu's SMPP tests and `waihu bench sms`, built on Debian's Net::SMPP
# (libnet-smpp-perl). It listens on 127.0.0.1 (port from argv, 0 = any), prints
# "PORT <n>", then serves every connection in a forked child:
#   bind_transceiver  -> bind_transceiver_resp (system_id SMSC)
#   submit_sm         -> submit_sm_resp with a unique message id; logs
#                        "SUBMIT <seq> <dst> <esm> <dc> <rd> <hex short_message> <hex message_payload>"
#                        and, when registered_delivery asks, a deliver_sm receipt
#                        ("id:<mid> ... stat:DELIVRD err:000 text:")
#   enquire_link      -> enquire_link_resp;  unbind -> unbind_resp, child exits
# With SMSC_MO_HEX set (UCS-2 hex), the first receipt to each number is followed by a
# mobile-originated deliver_sm from that number with that text (a customer's reply).
# SMSC_RECEIPTS=0 turns receipts off (throughput runs).
use strict;
use warnings;
use Net::SMPP;
use POSIX qw(strftime);
use Socket qw(IPPROTO_TCP TCP_NODELAY);

$| = 1;
my $port = $ARGV[0] // 0;
my $receipts = ($ENV{SMSC_RECEIPTS} // '1') ne '0';
my $mo = defined $ENV{SMSC_MO_HEX} ? pack('H*', $ENV{SMSC_MO_HEX}) : undef;

my $listen = Net::SMPP->new_listen('127.0.0.1', port => $port, smpp_version => 0x34,
    interface_version => 0x00, timeout => 3600, listen => 16)
    or die "smsc: cannot listen: $!";
print "PORT ", $listen->sockport, "\n";
$SIG{CHLD} = 'IGNORE';
my $c;
while (1) {
    $c = $listen->accept or next;
    my $pid = fork;
    die "smsc: fork: $!" unless defined $pid;
    last if $pid == 0;
    close $c;
}
undef $listen;
# Answers go out at once, as a real SMSC's do (no Nagle delay behind a window of requests).
setsockopt($c, IPPROTO_TCP, TCP_NODELAY, 1);

my $n = 0;
my %mo_sent;
while (1) {
    my $pdu = $c->read_pdu() or exit 0;
    my $cmd = $pdu->{cmd};
    if ($cmd == 0x00000009) {
        print "BIND $pdu->{system_id}\n";
        $c->bind_transceiver_resp(system_id => 'SMSC', seq => $pdu->{seq});
    } elsif ($cmd == 0x00000004) {
        $n++;
        my $mid = sprintf('%x%06d', $$, $n);
        my $payload = $pdu->{message_payload} // '';
        print join(' ', 'SUBMIT', $pdu->{seq}, $pdu->{destination_addr}, $pdu->{esm_class},
            $pdu->{data_coding}, $pdu->{registered_delivery},
            unpack('H*', $pdu->{short_message}) || '-', unpack('H*', $payload) || '-'), "\n";
        $c->submit_sm_resp(message_id => $mid, seq => $pdu->{seq});
        if ($receipts && ($pdu->{registered_delivery} & 1)) {
            my $d = strftime('%y%m%d%H%M', gmtime);
            $c->deliver_sm(source_addr_ton => $pdu->{dest_addr_ton}, source_addr_npi => 1,
                source_addr => $pdu->{destination_addr}, dest_addr_ton => $pdu->{source_addr_ton},
                dest_addr_npi => 1, destination_addr => $pdu->{source_addr}, esm_class => 0x04,
                data_coding => 0,
                short_message => "id:$mid sub:001 dlvr:001 submit date:$d done date:$d stat:DELIVRD err:000 text:",
                async => 1);
            print "RECEIPT $mid\n";
            if (defined $mo && !$mo_sent{$pdu->{destination_addr}}++) {
                $c->deliver_sm(source_addr_ton => $pdu->{dest_addr_ton}, source_addr_npi => 1,
                    source_addr => $pdu->{destination_addr},
                    dest_addr_ton => $pdu->{source_addr_ton}, dest_addr_npi => 1,
                    destination_addr => $pdu->{source_addr}, esm_class => 0, data_coding => 8,
                    short_message => $mo, async => 1);
                print "MO $pdu->{destination_addr}\n";
            }
        }
    } elsif ($cmd == 0x00000015) {
        $c->enquire_link_resp(seq => $pdu->{seq});
    } elsif ($cmd == 0x00000006) {
        $c->unbind_resp(seq => $pdu->{seq});
        print "UNBIND\n";
        exit 0;
    } elsif ($cmd & 0x80000000) {
        # deliver_sm_resp, generic_nack: nothing to do.
    } else {
        $c->generic_nack(seq => $pdu->{seq}, status => 3);
    }
}
