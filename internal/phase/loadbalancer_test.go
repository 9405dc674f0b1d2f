package phase

import "testing"

// A `show stat` answer of HAProxy 2.6 (columns cut after addr for brevity, as HAProxy allows).
const sampleStat = `# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr
port_80,FRONTEND,,,0,0,2000,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,,,,,,,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,
port_80,backend0,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,5,0,,1,2,1,,0,,2,0,,0,L4OK,,0,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 check passed,,2,2,3,,,,172.30.0.21:30080
port_80,backend1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,3,3,,1,2,2,,0,,2,0,,0,L4CON,,0,,,,,,,,,,,0,0,,,,,-1,,,0,0,0,0,,,,Layer4 connection problem,,2,2,0,,,,172.30.0.22:30080
port_80,BACKEND,0,0,0,0,200,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,5,0,,1,2,0,,0,,1,0,,0,,,,,,,,,,,,,,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,
`

func TestParseHAProxyStat(t *testing.T) {
	got, err := ParseHAProxyStat(sampleStat)
	if err != nil {
		t.Fatal(err)
	}
	want := []LBBackend{
		{Port: 80, Address: "172.30.0.21", TargetPort: 30080, Status: "UP"},
		{Port: 80, Address: "172.30.0.22", TargetPort: 30080, Status: "DOWN"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := ParseHAProxyStat(""); err == nil {
		t.Error("empty status parsed")
	}
	if _, err := ParseHAProxyStat("# pxname,svname\nx,y\n"); err == nil {
		t.Error("status without columns parsed")
	}
}
